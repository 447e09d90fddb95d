"""Genomes: declared on the definition, handed to handlers and fitness, carried in the source."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from o_bus.agent.catalogue import load_definition
from o_bus.agent.definition import AgentDefinition
from o_bus.errors import ConfigurationError
from o_bus.events.model import Command, Event, State
from o_bus.evolution.search.genome import GenomeSpace, read_genome, write_genome

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "autoscaler" / "autoscaler.py"


class Knobs(BaseModel):
    factor: int = Field(default=2, ge=1, le=10)
    rate: float = Field(default=0.5, ge=0.0, le=1.0)
    mode: Literal["a", "b", "c"] = "a"
    loud: bool = False


class S(State):
    total: int = 0


class Add(Command):
    n: int


class Added(Event):
    n: int


def make() -> AgentDefinition[S]:
    d: AgentDefinition[S] = AgentDefinition("g", state=S, version="1", genome=Knobs)

    @d.command
    def add(state: S, cmd: Add, knobs: Knobs) -> Added:
        return Added(n=cmd.n * knobs.factor)

    @d.applies
    def applied(state: S, event: Added) -> S:
        return state.model_copy(update={"total": state.total + event.n})

    @d.fitness
    def fit(state: S, cmd: Add, events: Sequence[Event], knobs: Knobs) -> float:
        return float(knobs.factor)

    return d


def test_handlers_and_fitness_receive_the_genome_in_use() -> None:
    d = make()
    decision = d.decide(d.initial_state(), Add(n=3))
    assert decision.state.total == 6
    d.set_genome({"factor": 5})
    assert d.decide(d.initial_state(), Add(n=3)).state.total == 15
    assert d.fitness_function is not None
    assert d.fitness_function(d.initial_state(), Add(n=1), []) == 5.0


def test_a_genome_out_of_bounds_is_refused() -> None:
    d = make()
    with pytest.raises(ConfigurationError, match="genome"):
        d.set_genome({"factor": 11})


def test_the_space_mutates_within_bounds_and_is_seeded() -> None:
    space = GenomeSpace(Knobs)
    assert [g.kind for g in space.genes] == ["int", "float", "choice", "bool"]
    values = space.defaults()
    seen = []
    for seed in range(50):
        child = space.mutate(values, random.Random(seed))
        assert child != values
        assert 1 <= child["factor"] <= 10
        assert 0.0 <= child["rate"] <= 1.0
        seen.append(child)
    assert seen == [space.mutate(values, random.Random(seed)) for seed in range(50)]


def test_unbounded_numbers_are_refused() -> None:
    class Loose(BaseModel):
        x: int = 3

    with pytest.raises(ConfigurationError, match="bounds"):
        GenomeSpace(Loose)


def test_genome_written_in_the_source_is_applied_when_loaded(tmp_path: Path) -> None:
    source = EXAMPLE.read_text()
    assert read_genome(source) is None
    changed = write_genome(source, {"max_step": 7})
    assert read_genome(changed) == {"max_step": 7}
    assert read_genome(write_genome(changed, {"max_step": 3})) == {"max_step": 3}
    path = tmp_path / "autoscaler_v2.py"
    path.write_text(changed)
    definition = load_definition(str(path))
    assert definition.genome is not None
    assert definition.genome.model_dump()["max_step"] == 7
