"""The runner's policies: per-attempt timeouts that never block the agent, retries with
exponential backoff, the rate limit, and the result cache with its TTL."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any, cast

import pytest
from agents_for_tests.fetcher import make_fetcher
from pydantic import BaseModel
from pydantic_core import from_json
from support import eventually
from tools_fakes import FakeClock, http_fake, tool_platform

from o_bus.tools import RateLimit, ToolContext, ToolFailure, tool
from o_bus.tools.executor import ToolExecutor
from o_bus.tools.policy import ResultCache, TokenBucket

NO_BUS = ToolContext(cast(Any, None), cast(Any, None), "unit")


class Number(BaseModel):
    n: int


class FakeTime:
    """A clock and a sleep that advances it, so waits are exact and instant."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.clock.advance(seconds)


async def test_a_slow_tool_times_out_without_blocking_the_agent(nats_url: str) -> None:
    async with (
        http_fake() as server,
        tool_platform(nats_url, make_fetcher("slow1", timeout=2.0)) as platform,
    ):
        reply = await platform.send("fetch", {"url": server.url("/slow")})
        call_id = reply["events"][0]["data"]["call_id"]

        async def in_flight() -> bool:
            return server.count("/slow") == 1

        await eventually(in_flight, what="the slow call to reach the server")
        pings = [await platform.send("ping") for _ in range(3)]
        assert all(p["ok"] for p in pings)
        [completed] = await platform.completed()
        result = from_json(completed.data)
        assert result["error"]["code"] == "timeout"
        assert result["error"]["message"] == "no result within 2.0s"
        assert result["attempts"] == 1
        # The pings were answered while the call was in flight: their events come first.
        assert max(p["events"][0]["seq"] for p in pings) < completed.seq
        assert (await platform.state()).failures == {call_id: "timeout"}


async def test_failed_attempts_are_retried_with_backoff(nats_url: str) -> None:
    definition = make_fetcher("retry1", retries=3, backoff=0.2, jitter=0.0)
    async with http_fake() as server, tool_platform(nats_url, definition) as platform:
        await platform.send("fetch", {"url": server.url("/flaky")})
        [completed] = await platform.completed()
        result = from_json(completed.data)
        assert result["ok"]
        assert result["attempts"] == 3  # two 503s, then 200
        assert result["output"]["body"] == "recovered"
        first, second, third = server.hits["/flaky"]
        # 0.2 s, then 0.4 s; a little slack for the connection time of each attempt
        assert second - first >= 0.18
        assert third - second >= 0.38


async def test_retries_stop_after_the_last_attempt_and_skip_permanent_failures() -> None:
    calls: list[int] = []

    @tool("flaky", input=Number, output=Number, retries=3, backoff=0.5, backoff_max=1.2, jitter=0)
    async def flaky(request: Number, ctx: ToolContext) -> Number:
        calls.append(request.n)
        raise ToolFailure("down", retryable=request.n > 0)

    fake = FakeTime()
    executor = ToolExecutor(NO_BUS, clock=fake.clock, sleep=fake.sleep)
    failed = await executor.execute(flaky, {"n": 1})
    assert failed.error is not None
    assert failed.error.code == "tool_failed"
    assert failed.attempts == 4
    assert fake.slept == [0.5, 1.0, 1.2]  # doubling, capped at backoff_max
    permanent = await executor.execute(flaky, {"n": 0})
    assert permanent.attempts == 1
    assert calls == [1, 1, 1, 1, 0]


async def test_jitter_varies_each_delay_within_its_bounds() -> None:
    @tool("jittery", input=Number, output=Number, retries=50, backoff=1.0, jitter=0.25)
    async def jittery(request: Number, ctx: ToolContext) -> Number:
        raise ToolFailure("down", retryable=True)

    fake = FakeTime()
    await ToolExecutor(NO_BUS, clock=fake.clock, sleep=fake.sleep).execute(jittery, {"n": 1})
    first = fake.slept[0]
    assert 0.75 <= first <= 1.25
    assert len(set(fake.slept)) > 1


async def test_the_rate_limit_holds(nats_url: str) -> None:
    definition = make_fetcher("rate1", rate_limit=RateLimit(per_second=5, burst=1))
    async with http_fake() as server, tool_platform(nats_url, definition) as platform:
        urls = [server.url(f"/count/{i}") for i in range(4)]
        reply = await platform.send("fetch_many", {"urls": urls})
        assert len(reply["events"]) == 4
        await platform.completed(4)
        arrivals = sorted(t for i in range(4) for t in server.hits[f"/count/{i}"])
        gaps = [b - a for a, b in itertools.pairwise(arrivals)]
        assert len(gaps) == 3
        assert min(gaps) >= 0.16  # 0.2 s at 5 per second, less the connection-time jitter


async def test_token_bucket_allows_a_burst_then_one_per_interval() -> None:
    fake = FakeTime()
    bucket = TokenBucket(RateLimit(per_second=10, burst=2), fake.clock, fake.sleep)
    for _ in range(5):
        await bucket.acquire()
    assert fake.slept == [0.1, 0.1, 0.1]
    fake.clock.advance(10)  # idle: refills to the burst, no more
    await bucket.acquire()
    await bucket.acquire()
    assert fake.slept == [0.1, 0.1, 0.1]
    await bucket.acquire()
    assert fake.slept == [0.1, 0.1, 0.1, 0.1]


async def test_cached_results_are_reused_then_expire(nats_url: str) -> None:
    clock = FakeClock()
    definition = make_fetcher("cache1", cache_ttl=30.0)
    async with http_fake() as server, tool_platform(nats_url, definition, clock=clock) as p:
        url = server.url("/count/c")
        await p.send("fetch", {"url": url})
        await p.completed(1)
        await p.send("fetch", {"url": url})
        await p.completed(2)
        clock.advance(29.9)
        await p.send("fetch", {"url": url})
        await p.completed(3)
        clock.advance(0.1)  # 30 s after the first call: expired
        await p.send("fetch", {"url": url})
        results = [from_json(e.data) for e in await p.completed(4)]
        assert [r["cached"] for r in results] == [False, True, True, False]
        assert [r["output"]["body"] for r in results] == ["hello 1"] * 3 + ["hello 2"]
        assert [r["attempts"] for r in results] == [1, 0, 0, 1]
        assert server.count("/count/c") == 2
        assert (await p.state()).cached == ["call-2", "call-3"]


def test_the_cache_forgets_the_oldest_entries_beyond_its_bounds() -> None:
    clock = FakeClock()
    cache = ResultCache(clock, capacity=2)
    for key in ("a", "b", "c"):
        cache.put(("t", key), {"v": key}, 10.0)
    assert cache.get(("t", "a")) is None
    assert cache.get(("t", "c")) == {"v": "c"}
    by_size = ResultCache(clock, max_bytes=100)
    by_size.put(("t", "small"), {"v": "s"}, 10.0)
    by_size.put(("t", "huge"), {"v": "h" * 200}, 10.0)  # larger than the whole cache: not kept
    assert by_size.get(("t", "huge")) is None
    by_size.put(("t", "half"), {"v": "x" * 80}, 10.0)  # pushes the older entry out
    assert by_size.get(("t", "small")) is None
    assert by_size.get(("t", "half")) is not None
    assert by_size.size <= 100


async def test_a_timed_out_attempt_is_cancelled() -> None:
    cancelled = asyncio.Event()

    @tool("stuck", input=Number, output=Number, timeout=0.05)
    async def stuck(request: Number, ctx: ToolContext) -> Number:
        try:
            await asyncio.sleep(3600)
        finally:
            cancelled.set()
        raise AssertionError("unreachable")

    result = await ToolExecutor(NO_BUS).execute(stuck, {"n": 1})
    assert result.error is not None
    assert result.error.code == "timeout"
    assert cancelled.is_set()


@pytest.mark.parametrize(
    ("setting", "value"),
    [("timeout", 0), ("retries", -1), ("jitter", 1.0), ("cache_ttl", -1), ("name", "Bad Name")],
)
def test_tool_settings_are_checked(setting: str, value: Any) -> None:
    from o_bus.errors import ConfigurationError

    @tool("fine", input=Number, output=Number)
    async def fine(request: Number, ctx: ToolContext) -> Number:
        return request

    with pytest.raises(ConfigurationError, match="tool"):
        fine.configured(**{setting: value})
