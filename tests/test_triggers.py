"""Self-triggers on a real bus: each kind fires on recorded figures with its reason, a search is
started through the launch function within the budget, one at a time, and never while paused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from processes import ProcessGroup, wait_for_service
from pydantic_core import from_json
from support import Platform, eventually, run_cli, running_platform

from o_bus.agent.catalogue import Catalogue, load_definition
from o_bus.agent.definition import AgentDefinition
from o_bus.evolution.feedback.intake import FeedbackIntake
from o_bus.evolution.triggers import ErrorRateAbove, Every, FitnessBelow, OnFeedback, SearchBudget
from o_bus.evolution.triggers import launch as launch_module
from o_bus.evolution.triggers.launch import SearchOutcome, SearchRequest, start_search
from o_bus.evolution.triggers.records import TriggerLog, TriggerRecord
from o_bus.handlers.triggers.service import TriggerService
from o_bus.store.event_records import utc_now

IMPROVER = str(Path(__file__).parent / "agents_for_tests" / "improver.py") + ":improver"


class Searches:
    """Records what the trigger service asked of the search engine; can hold a search open."""

    def __init__(self) -> None:
        self.requests: list[SearchRequest] = []
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self, request: SearchRequest) -> SearchOutcome:
        self.requests.append(request)
        await self.release.wait()
        return SearchOutcome("finished", {"best": "v2"})


@pytest.fixture
async def platform(nats_url: str) -> AsyncIterator[Platform]:
    async with running_platform(
        nats_url, agents=("improver",), extra_definitions=(IMPROVER,)
    ) as running:
        yield running


def service_for(
    platform: Platform, *triggers: Any, budget: SearchBudget | None = None
) -> tuple[TriggerService, Searches]:
    definition: AgentDefinition[Any] = load_definition(IMPROVER)
    definition.triggers = tuple(triggers)
    definition.search_budget = budget
    searches = Searches()
    service = TriggerService(
        platform.nc, platform.js, platform.url, catalogue=Catalogue([definition]), launcher=searches
    )
    return service, searches


async def settle(service: TriggerService) -> None:
    await asyncio.gather(*service.searches.values())


async def kinds(platform: Platform) -> list[str]:
    return [r.kind for r in await TriggerLog(platform.js).records("improver")]


async def test_negative_feedback_fires_a_search_with_its_reason(platform: Platform) -> None:
    service, searches = service_for(platform, OnFeedback(below=0.0, count=2))
    intake = FeedbackIntake(platform.js)
    await intake.accept("improver", b'{"request_id": "a", "score": -0.5, "text": "vague"}')
    await service.round()
    assert searches.requests == []  # one negative feedback: not yet
    await intake.accept("improver", b'{"request_id": "b", "score": 0.9}')
    await intake.accept("improver", b'{"request_id": "c", "score": -1, "text": "wrong"}')
    await service.round()
    await settle(service)
    assert len(searches.requests) == 1
    request = searches.requests[0]
    assert request.agent == "improver"
    assert "2 feedback(s) scored below 0" in request.reason
    assert "wrong" in request.reason
    assert request.budget == SearchBudget()
    records = await TriggerLog(platform.js).records("improver")
    assert [r.kind for r in records] == ["fired", "search_started", "search_finished"]
    assert records[2].outcome is not None
    assert records[2].outcome["status"] == "finished"
    assert "spent" in records[2].outcome
    await service.round()  # the feedback it fired on is counted: no second search
    assert len(searches.requests) == 1


async def test_error_rate_fires_on_crashes_not_on_rejections(platform: Platform) -> None:
    service, searches = service_for(platform, ErrorRateAbove(rate=0.3, window=10, min_requests=4))
    for i in range(4):
        reply = await platform.send("improver", "answer", {"quality": 99}, request_id=f"bad-{i}")
        assert reply["error"]["code"] == "invalid_payload"  # a rejection, not an error
    await service.round()
    assert searches.requests == []
    for i in range(2):
        reply = await platform.send("improver", "fail", {}, request_id=f"crash-{i}")
        assert reply["error"]["code"] == "internal_error"
    await service.round()
    await settle(service)
    assert len(searches.requests) == 1
    assert "error rate 2/6" in searches.requests[0].reason


async def test_fitness_below_threshold_fires_and_too_few_requests_do_not(
    platform: Platform,
) -> None:
    service, searches = service_for(
        platform, FitnessBelow(threshold=0.5, window=20, min_requests=3)
    )
    for i in range(2):
        await platform.send("improver", "answer", {"quality": 1}, request_id=f"low-{i}")
    await service.round()
    assert searches.requests == []  # two requests: no verdict
    await platform.send("improver", "answer", {"quality": 2}, request_id="low-2")
    await service.round()
    await settle(service)
    assert len(searches.requests) == 1
    assert "mean fitness 0.1333 below 0.5 over the last 3 requests" in searches.requests[0].reason


async def test_one_search_at_a_time_and_a_wall_time_budget(platform: Platform) -> None:
    budget = SearchBudget(max_evaluations=10, cpu_seconds=5, wall_seconds=0.5)
    service, searches = service_for(platform, Every(seconds=0.01), budget=budget)
    searches.release.clear()  # the search never ends by itself
    service.watching_since["improver"] = 0.0  # the schedule is overdue
    await service.round()

    async def started() -> bool:
        return len(searches.requests) == 1

    await eventually(started, what="the search to start")
    await service.round()  # still running: no second search
    assert len(searches.requests) == 1
    await settle(service)
    records = await TriggerLog(platform.js).records("improver")
    finished = records[-1]
    assert finished.kind == "search_finished"
    assert finished.outcome is not None
    assert finished.outcome["status"] == "timed_out"
    assert searches.requests[0].budget == budget


async def test_paused_triggers_do_not_fire_until_resumed(platform: Platform) -> None:
    service, searches = service_for(platform, OnFeedback(count=1))
    code, out, err = await run_cli(
        "evolve", "triggers", "pause", "improver", "--reason", "incident", "--nats", platform.url
    )
    assert code == 0, err
    assert from_json(out)["paused"] is True
    await FeedbackIntake(platform.js).accept("improver", b'{"request_id": "a", "score": -1}')
    await service.round()
    assert searches.requests == []
    code, out, _ = await run_cli(
        "evolve", "triggers", "resume", "improver", "--nats", platform.url, "--json"
    )
    assert from_json(out)["paused"] is False
    await service.round()
    await settle(service)
    assert len(searches.requests) == 1
    assert await kinds(platform) == [
        "paused",
        "resumed",
        "fired",
        "search_started",
        "search_finished",
    ]


async def test_a_search_left_by_a_gone_leader_is_closed_then_triggers_resume(
    platform: Platform,
) -> None:
    service, searches = service_for(platform, OnFeedback(count=1))
    await TriggerLog(platform.js).append(
        TriggerRecord(
            kind="search_started", agent="improver", at=utc_now(), at_epoch=0, search_id="old"
        )
    )
    await FeedbackIntake(platform.js).accept("improver", b'{"request_id": "a", "score": -1}')
    await service.round()
    assert searches.requests == []
    records = await TriggerLog(platform.js).records("improver")
    assert records[-1].kind == "search_finished"
    assert records[-1].search_id == "old"
    assert records[-1].outcome == {"status": "abandoned", "started_by": None}
    await service.round()
    await settle(service)
    assert len(searches.requests) == 1


async def test_the_leader_fires_by_itself(platform: Platform) -> None:
    service, searches = service_for(platform, OnFeedback(count=1))
    service.tick = 0.05
    await service.start()
    try:
        await FeedbackIntake(platform.js).accept("improver", b'{"request_id": "a", "score": -1}')

        async def finished() -> bool:
            return (await kinds(platform))[-1:] == ["search_finished"]

        await eventually(finished, what="a triggered search to finish")
    finally:
        await service.stop()
    assert len(searches.requests) == 1


async def test_start_search_is_where_the_engine_is_called(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    request = SearchRequest("improver", "s1", "why", SearchBudget(), "nats://127.0.0.1:1")
    monkeypatch.setattr(launch_module, "SEARCH_ENTRY_POINT", "o_bus.no_such_engine:run")
    outcome = await start_search(request)
    assert outcome.status == "unavailable"
    assert "o_bus.no_such_engine is not installed" in outcome.detail["reason"]
    called: list[SearchRequest] = []

    async def entry(got: SearchRequest) -> dict[str, Any]:
        called.append(got)
        return {"best": "v9"}

    monkeypatch.setattr(launch_module, "SEARCH_ENTRY_POINT", f"{__name__}:ENGINE")
    monkeypatch.setitem(globals(), "ENGINE", entry)
    outcome = await start_search(request)
    assert called == [request]
    assert (outcome.status, outcome.detail) == ("finished", {"best": "v9"})


async def test_feedback_and_trigger_services_as_processes(
    platform: Platform, group: ProcessGroup
) -> None:
    """`o-bus run feedback` and `o-bus run triggers`: negative feedback sent with the CLI
    makes the agent's own trigger fire and a search start through the engine's entry point."""
    group.spawn("feedback")
    group.spawn("triggers", "--agent", IMPROVER)
    await wait_for_service(platform.nc, "feedback")
    await wait_for_service(platform.nc, "triggers")
    await platform.send("improver", "answer", {"quality": 2}, request_id="q1")
    code, out, err = await run_cli(
        "feedback", "improver", "q1", "-1", "--text", "off topic", "--nats", platform.url
    )
    assert code == 0, err
    assert from_json(out)["regression"] is True

    async def finished() -> list[TriggerRecord] | None:
        records = await TriggerLog(platform.js).records("improver")
        return records if records and records[-1].kind == "search_finished" else None

    records = await eventually(finished, what="the triggered search to be recorded", timeout=90)
    assert [r.kind for r in records] == ["fired", "search_started", "search_finished"]
    assert "off topic" in records[0].reason
    assert records[1].budget == SearchBudget(max_evaluations=3, cpu_seconds=10, wall_seconds=60)
    outcome = records[2].outcome
    assert outcome is not None
    assert outcome["status"] == "finished", outcome
    assert outcome["evaluations"] <= 3
    assert outcome["stop_reason"].startswith(("evaluation budget spent", "stalled")), outcome
