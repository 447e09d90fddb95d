"""Example agent ``autoscaler``: decides how many replicas serve an observed load.

Each ``observe`` command reports the current load (requests/s); the agent answers with the
replica count it wants. One replica serves ``CAPACITY`` requests/s. The fitness rewards
serving the load (an under-provisioned step drops requests) and penalises idle replicas.

The genome holds the tunable parameters. The shipped values are deliberately poor (scale
only when nearly saturated, one replica at a time): ``o-bus evolve search autoscaler
--dataset examples/autoscaler/traffic.jsonl`` finds better ones, and code mutations may
change the rules themselves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, Field

from o_bus.agent.definition import AgentDefinition
from o_bus.events.model import Command, Event, State

__all__ = ["AutoscalerGenome", "Observe", "Scaled", "ScalerState", "autoscaler"]

CAPACITY = 100.0
MAX_REPLICAS = 64

# The behaviour descriptors a search files this agent's versions under (see docs/evolution.md).
O_BUS_DESCRIPTORS = ["genome.max_step", "code_size"]


class AutoscalerGenome(BaseModel):
    target_utilization: float = Field(default=0.98, ge=0.3, le=1.0)
    max_step: int = Field(default=1, ge=1, le=16)
    headroom: int = Field(default=0, ge=0, le=4)
    scale_down: Literal["never", "gradual", "immediate"] = "never"
    predictive: bool = False


class ScalerState(State):
    replicas: int = 1
    last_load: float = 0.0


class Observe(Command):
    load: float = Field(ge=0, le=1_000_000)


class Scaled(Event):
    replicas: int
    load: float


autoscaler: AgentDefinition[ScalerState] = AgentDefinition(
    "autoscaler",
    state=ScalerState,
    version="1.0.0",
    description="Chooses a replica count for an observed load.",
    genome=AutoscalerGenome,
)


@autoscaler.command
def observe(state: ScalerState, cmd: Observe, genome: AutoscalerGenome) -> Scaled:
    expected = cmd.load
    if genome.predictive and cmd.load > state.last_load:
        expected = cmd.load + (cmd.load - state.last_load)
    wanted = math.ceil(expected / (CAPACITY * genome.target_utilization)) + genome.headroom
    wanted = max(1, min(MAX_REPLICAS, wanted))
    current = state.replicas
    if wanted > current:
        replicas = min(wanted, current + genome.max_step)
    elif wanted < current and genome.scale_down == "immediate":
        replicas = wanted
    elif wanted < current and genome.scale_down == "gradual":
        replicas = max(wanted, current - 1)
    else:
        replicas = current
    return Scaled(replicas=replicas, load=cmd.load)


@autoscaler.applies
def apply_scaled(state: ScalerState, event: Scaled) -> ScalerState:
    return state.model_copy(update={"replicas": event.replicas, "last_load": event.load})


@autoscaler.fitness
def service_quality(state: ScalerState, cmd: Observe, events: Sequence[Event]) -> float:
    """1.0 when the load is served with no idle replica; dropped load costs six times idle."""
    replicas = next((e.replicas for e in events if isinstance(e, Scaled)), state.replicas)
    capacity = replicas * CAPACITY
    if cmd.load <= 0:
        return 1.0 if replicas == 1 else 0.5
    served = min(cmd.load, capacity) / cmd.load
    idle = max(0.0, capacity - cmd.load) / capacity
    return max(0.0, 1.0 - 3.0 * (1.0 - served) - 0.5 * idle)
