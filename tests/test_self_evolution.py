"""Self-evolution end to end on a real bus: negative feedback fires the agent's own trigger, the
trigger service runs a real search (sandboxed evaluation processes) on the agent's recorded
WAL traffic, the winner is deployed and handed to the arbiter by itself, and the arbiter takes
it through shadow, canary and promotion on live traffic. A handed-over version that is worse
on live traffic is rolled back: the engine proposes, the arbiter disposes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from evolution_support import running_arbiter, steady_traffic
from support import running_platform

from o_bus.agent.catalogue import Catalogue, load_definition
from o_bus.agent.improvement import HandOff
from o_bus.evolution.code_store import CodeStore, default_cache_dir
from o_bus.evolution.deploy import deploy
from o_bus.evolution.feedback.intake import FeedbackIntake
from o_bus.evolution.routes import RouteStore
from o_bus.evolution.search.handoff import hand_off
from o_bus.evolution.search.lineage.events import BestDeployed, HandedOff
from o_bus.evolution.search.lineage.stream import LineageStream
from o_bus.evolution.triggers.records import TriggerLog
from o_bus.handlers.triggers.service import TriggerService

pytestmark = pytest.mark.slow

# The scorer of the evolution tests, with its multiplier as a gene: live answers 2 * x,
# fitness rewards answers close to 3 * x, so a genome step to 3 is the improvement.
TUNED = """
from __future__ import annotations

from pydantic import BaseModel, Field

from o_bus import AgentDefinition, Command, Event, State
from o_bus.agent.improvement import HandOff, OnFeedback, SearchBudget


class Tuning(BaseModel):
    factor: int = Field(default=2, ge=1, le=5)


class ScorerState(State):
    guesses: int = 0


class Guess(Command):
    x: int


class Scored(Event):
    x: int
    answer: int


scorer = AgentDefinition(
    "scorer",
    state=ScorerState,
    version="VERSION",
    genome=Tuning,
    triggers=[OnFeedback(below=0.0, count=1)],
    search_budget=SearchBudget(max_evaluations=12, cpu_seconds=60, wall_seconds=240),
    handoff=HandOff(
        margin=0.5, canary_steps=(50,), min_requests=30, min_canary_requests=10,
        min_stage_seconds=0.5, bake_seconds=0.5,
    ),
)


@scorer.command
def guess(state: ScorerState, cmd: Guess, tuning: Tuning) -> Scored:
    return Scored(x=cmd.x, answer=tuning.factor * cmd.x)


@scorer.applies
def _(state: ScorerState, event: Scored) -> ScorerState:
    return state.model_copy(update={"guesses": state.guesses + 1})


@scorer.fitness
def closeness(state: ScorerState, cmd: Guess, events: list[Event]) -> float:
    answers = [e.answer for e in events if isinstance(e, Scored)]
    return -abs(answers[0] - 3 * cmd.x) if answers else -1000.0
"""


def tuned(version: str, genome: str = "") -> str:
    return TUNED.replace("VERSION", version) + genome


async def test_a_trigger_hands_its_winner_to_the_arbiter_and_a_worse_one_is_rolled_back(
    nats_url: str, tmp_path: Path
) -> None:
    live = tmp_path / "scorer_live.py"
    live.write_text(tuned("1.0.0"))
    spec = f"{live}:scorer"
    async with running_platform(nats_url, agents=("scorer",), extra_definitions=[spec]) as bus:
        for n in range(40):  # recorded traffic the search evaluates on
            reply = await bus.send("scorer", "guess", {"x": n % 7 + 1}, request_id=f"r{n}")
            assert reply["ok"], reply
        definition = load_definition(spec)
        service = TriggerService(bus.nc, bus.js, bus.url, catalogue=Catalogue([definition]))
        await FeedbackIntake(bus.js).accept(
            "scorer", b'{"request_id": "r5", "score": -1, "text": "answers are too low"}'
        )
        async with running_arbiter(nats_url, spec) as arbiter:
            await service.round()
            assert list(service.searches) == ["scorer"]
            await asyncio.gather(*service.searches.values())
            records = await TriggerLog(bus.js).records("scorer")
            assert [r.kind for r in records] == ["fired", "search_started", "search_finished"]
            assert "answers are too low" in records[0].reason
            outcome: dict[str, Any] = records[2].outcome or {}
            assert outcome["status"] == "finished", outcome
            assert outcome["handed_off"] is True, outcome
            mean_x = sum(n % 7 + 1 for n in range(40)) / 40
            assert outcome["baseline_fitness"] == pytest.approx(-mean_x)  # |2x - 3x|
            assert outcome["best_fitness"] == 0.0  # factor 3: every answer exactly 3 * x
            winner = outcome["best_version"]
            lineage = await LineageStream(bus.js, "scorer").read(records[1].search_id or "")
            handed = [e for e in lineage if isinstance(e, HandedOff)]
            assert [(h.handed, h.code_version) for h in handed] == [(True, winner)]
            async with steady_traffic(bus) as seen:
                promoted = await arbiter.finished(timeout=180)
            assert promoted.status == "promoted", promoted.decisions
            assert promoted.version == winner
            assert {d.stage for d in promoted.decisions} >= {"shadow", "canary-50", "live"}
            assert promoted.requested_by.startswith("self-trigger: ")
            assert not seen.failed
            route, _ = await RouteStore(bus.js).get("scorer")
            assert route.live == winner

            # A "winner" that is worse on live traffic (factor 1) goes the same way and the
            # arbiter rolls it back: the offline figure it was handed over with is a claim.
            worse_file = tmp_path / "scorer_worse.py"
            worse_file.write_text(tuned("1.0.2", "\nO_BUS_GENOME = {'factor': 1}\n"))
            worse = await deploy(bus.js, "scorer", worse_file, by="test", note="worse")
            claimed = BestDeployed(search="s", child="c", code_version=worse.digest, fitness=0.0)
            rules = HandOff(
                margin=0.5,
                canary_steps=(50,),
                min_requests=30,
                min_canary_requests=10,
                min_stage_seconds=0.5,
                bake_seconds=0.5,
            )
            record = await hand_off(bus.js, "scorer", "s", claimed, -4.0, rules, "test")
            assert record.handed, record
            async with steady_traffic(bus) as seen:
                rolled_back = await arbiter.finished(timeout=120)
            assert rolled_back.status == "rolled_back", rolled_back.decisions
            assert "fitness" in rolled_back.decisions[-1].reason
            assert not seen.failed
            route, _ = await RouteStore(bus.js).get("scorer")
            assert route.live == winner  # still the promoted winner
            version = await CodeStore(bus.js, default_cache_dir()).get("scorer", winner)
            assert version.deployed_by.startswith("self-trigger: ")
