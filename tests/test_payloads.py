"""Payloads drawn from command schemas: edge-biased, mostly valid, some just outside a bound."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from o_bus.agent.catalogue import Catalogue
from o_bus.agents.quota import LIMIT, Reserve, quota
from o_bus.evolution.adversarial.cases import Step
from o_bus.evolution.adversarial.payloads import PayloadGenerator
from o_bus.evolution.adversarial.play import play


def test_integers_come_from_the_bounds_and_just_outside_them() -> None:
    generator = PayloadGenerator(Reserve.model_json_schema(), random.Random(7))
    amounts = [generator.draw()["amount"] for _ in range(300)]
    assert {1, 2, LIMIT - 1, LIMIT} <= set(amounts)
    outside = [a for a in amounts if not 1 <= a <= LIMIT]
    assert outside
    assert set(outside) <= {0, LIMIT + 1}
    assert len(outside) < len(amounts) / 4


@pytest.mark.parametrize("name", Catalogue.discover().names())
def test_every_installed_command_schema_gives_mostly_valid_payloads(name: str) -> None:
    definition = Catalogue.discover().get(name)
    rng = random.Random(1)
    for command_type in definition.command_types.values():
        generator = PayloadGenerator(command_type.model_json_schema(), rng)
        valid = 0
        for _ in range(50):
            payload = generator.mutate(generator.draw()) if rng.random() < 0.3 else generator.draw()
            try:
                command_type.model_validate(payload)
                valid += 1
            except ValidationError:
                pass
        assert valid >= 25, (name, command_type.__name__)


def test_the_same_seed_draws_the_same_payloads() -> None:
    schema = Reserve.model_json_schema()
    first = PayloadGenerator(schema, random.Random(3))
    second = PayloadGenerator(schema, random.Random(3))
    assert [first.draw() for _ in range(20)] == [second.draw() for _ in range(20)]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)


@settings(max_examples=100, deadline=None)
@given(command=st.sampled_from(["reserve", "release", "nope"]), data=json_values)
def test_blue_answers_any_payload_without_crashing(command: str, data: object) -> None:
    """Whatever a client sends, the agent answers (a rejection at worst): only the agent's own
    code can fail a run, never the payload's shape."""
    result = play(quota, [Step(command=command, data=data)])
    assert result.failure is None
    assert len(result.answers) == 1
