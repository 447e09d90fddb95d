"""Feedback on a real bus: accepted and recorded, bad input refused with a clear error and a
dead letter, negative scores added to the regression set, read by fitness."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic_core import from_json
from support import Platform, dead_letter, run_cli, running_platform

from o_bus.agent.catalogue import load_definition
from o_bus.agent.definition import AgentDefinition
from o_bus.common.connect import connect
from o_bus.errors import ConfigurationError
from o_bus.events.model import Command, Event
from o_bus.evolution.adversarial.regression_log import RegressionLog, regression_requests
from o_bus.evolution.feedback.client import send_feedback
from o_bus.evolution.feedback.fitness import feedback_parameter, score
from o_bus.evolution.feedback.log import FeedbackLog
from o_bus.evolution.feedback.model import Feedback
from o_bus.handlers.feedback.service import FeedbackService
from o_bus.wire.codec import Encoding

IMPROVER = str(Path(__file__).parent / "agents_for_tests" / "improver.py") + ":improver"


@pytest.fixture
async def platform(nats_url: str) -> AsyncIterator[Platform]:
    async with (
        running_platform(nats_url, agents=("improver",), extra_definitions=(IMPROVER,)) as running,
        connect(nats_url, "test-feedback") as (nc, js),
    ):
        service = FeedbackService(nc, js)
        await service.start()
        # A connection's very first request can be answered "no responders" although the
        # service is subscribed; a round trip first avoids it (send_feedback retries instead).
        await running.nc.flush()
        try:
            yield running
        finally:
            await service.stop()


async def test_feedback_is_recorded_and_negative_feedback_joins_the_regression_set(
    platform: Platform,
) -> None:
    ok = await platform.send("improver", "answer", {"quality": 3}, request_id="r-good")
    assert ok["ok"]
    await platform.send("improver", "answer", {"quality": 1}, request_id="r-bad")
    good = await send_feedback(platform.nc, "improver", "r-good", 0.8, text="helpful")
    assert good["ok"]
    assert good["regression"] is False
    bad = await send_feedback(platform.nc, "improver", "r-bad", -1, text="wrong answer", by="ann")
    assert bad["ok"]
    assert bad["regression"] is True
    assert bad["seq"] > good["seq"]

    recorded = await FeedbackLog(platform.js).read("improver")
    assert [(f.request_id, f.score, f.text) for f in recorded] == [
        ("r-good", 0.8, "helpful"),
        ("r-bad", -1.0, "wrong answer"),
    ]
    assert recorded[1].by == "ann"

    cases = await RegressionLog(platform.js).cases("improver")
    assert [(c.source, c.request_id, c.steps) for c in cases] == [("feedback", "r-bad", [])]
    assert cases[0].wal_seq == 2  # the second request the WAL took
    runnable = await regression_requests(platform.js, "improver")
    assert len(runnable) == 1
    assert runnable[0].steps[0].command == "answer"
    assert runnable[0].steps[0].data == {"quality": 1}


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        (b'{"request_id": "r1", "score": 2}', "invalid_payload", "score"),
        (b'{"request_id": "r1"}', "invalid_payload", "score: Field required"),
        (b'{"request_id": "", "score": 0}', "invalid_payload", "request_id"),
        (b'{"request_id": "r1", "score": 0, "extra": 1}', "invalid_payload", "extra"),
        (b"not json", "malformed_request", "not valid JSON"),
    ],
)
async def test_bad_feedback_gets_a_clear_error_and_a_dead_letter(
    platform: Platform, body: bytes, code: str, words: str
) -> None:
    msg = await platform.nc.request("o.feedback.improver", body, timeout=5)
    reply = from_json(msg.data)
    assert reply["ok"] is False
    assert reply["error"]["code"] == code
    assert words in reply["error"]["message"]
    request_id = "r1" if b'"r1"' in body else None
    letter = await dead_letter(platform.js, "improver", request_id)
    assert letter.headers is not None
    assert letter.headers["O-Error-Code"] == code
    assert await FeedbackLog(platform.js).read("improver") == []
    still = await send_feedback(platform.nc, "improver", "r1", 0.5)  # the service carries on
    assert still["ok"]


async def test_feedback_for_an_unknown_agent_is_refused(platform: Platform) -> None:
    reply = await send_feedback(platform.nc, "nobody", "r1", 1)
    assert reply["error"]["code"] == "unknown_agent"
    bad_name = from_json((await platform.nc.request("o.feedback.-x", b"{}", timeout=5)).data)
    assert bad_name["error"]["code"] == "malformed_request"
    assert "invalid agent name" in bad_name["error"]["message"]


async def test_the_cli_sends_feedback(platform: Platform) -> None:
    code, out, err = await run_cli(
        "feedback",
        "improver",
        "r-cli",
        "-0.5",
        "--text",
        "too slow",
        "--nats",
        platform.url,
        "--json",
    )
    assert code == 0, err
    assert from_json(out)["regression"] is True
    code, out, _ = await run_cli("feedback", "improver", "r-cli", "3", "--nats", platform.url)
    assert code == 1
    assert "invalid_payload" in out


def test_fitness_receives_the_feedback_of_the_request() -> None:
    definition = load_definition(IMPROVER)
    fn = definition.fitness_function
    assert fn is not None
    assert feedback_parameter(fn) == "feedback"
    command = definition.parse_command("answer", b'{"quality": 10}', Encoding.JSON)
    events = definition.decide(definition.initial_state(), command).events
    state = definition.initial_state()
    assert score(definition, state, command, events) == 1.0
    fb = Feedback(agent="improver", request_id="r", score=-1.0, at="t")
    assert score(definition, state, command, events, fb) == 0.5


def test_a_fitness_that_requires_feedback_is_refused() -> None:
    definition: AgentDefinition[Any] = load_definition(IMPROVER)

    def needs_four(state: Any, cmd: Command, events: Sequence[Event], fb: Feedback) -> float:
        return 0.0

    with pytest.raises(ConfigurationError, match="give any other parameter"):
        definition.fitness(needs_four)
