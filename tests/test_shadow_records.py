"""A shadow reads every record of live's log once, in order, or says it lost some.

nats-py drops what a slow subscriber cannot queue after the ordered consumer has counted it,
so a shadow that fell far behind would otherwise go on from a state missing live's events.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from support import eventually, running_platform

from o_bus.agents.counter import counter
from o_bus.evolution.candidate.budget import CpuBudget
from o_bus.evolution.candidate.shadow import ShadowRunner
from o_bus.store.event_records import H_WAL


@dataclass
class Delivery:
    """What the shadow's callback reads of a JetStream delivery."""

    subject: str
    headers: dict[str, str]
    data: bytes
    reply: str


def delivery(stream_seq: int, kind: str = "evt") -> Delivery:
    ack = f"$JS.ACK.O_EVT_counter.shadow.1.{stream_seq}.{stream_seq}.0.0"
    return Delivery(f"o.{kind}.counter", {H_WAL: str(stream_seq)}, b'{"by": 1}', ack)


def shadow() -> ShadowRunner:
    # No record is complete until the next request's arrives, so no NATS call is made here.
    return ShadowRunner(None, None, "counter", "sha256:" + "0" * 64, counter, counter)  # type: ignore[arg-type]


async def test_records_read_in_order_and_redeliveries_are_ignored() -> None:
    runner = shadow()
    await runner.on_record(delivery(1))  # type: ignore[arg-type]
    await runner.on_record(delivery(1))  # type: ignore[arg-type]
    await runner.on_record(delivery(2, "fence"))  # type: ignore[arg-type]
    assert not runner.failed.done()
    assert [record.headers[H_WAL] for record in runner.pending] == ["1"]


async def test_a_gap_in_the_log_fails_the_shadow_with_the_missing_records() -> None:
    runner = shadow()
    await runner.on_record(delivery(1))  # type: ignore[arg-type]
    await runner.on_record(delivery(5))  # type: ignore[arg-type]
    assert runner.failed.done()
    reason = runner.failed.result()
    assert "fell too far behind live" in reason
    assert "records 2..4" in reason
    assert [record.headers[H_WAL] for record in runner.pending] == ["1"]


async def test_a_sample_compares_the_same_request_ids_every_time() -> None:
    sampled = ShadowRunner(
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        "counter",
        "sha256:" + "0" * 64,
        counter,
        counter,
        sample=0.25,
    )
    ids = [f"request-{n}" for n in range(4000)]
    kept = [i for i in ids if not sampled.sheds(i, 0)]
    assert 800 < len(kept) < 1200  # about a quarter
    assert kept == [i for i in ids if not sampled.sheds(i, 0)]  # deterministic by id
    assert not any(shadow().sheds(i, 0) for i in ids)  # no sample: every request


async def test_a_shadow_far_behind_live_follows_state_without_comparing() -> None:
    runner = shadow()
    runner.counters.lag = runner.shed_lag + 1
    assert runner.sheds("any", 1)
    runner.counters.lag = 0
    assert not runner.sheds("any", 1)


def test_a_cpu_budget_asks_for_the_rest_that_brings_use_down_to_its_share() -> None:
    now = {"wall": 100.0, "cpu": 5.0}
    budget = CpuBudget(0.1, clock=lambda: now["wall"], cpu=lambda: now["cpu"], max_rest=30.0)
    now["wall"] += 1.0
    now["cpu"] += 0.05  # 5% of a core: within budget
    assert budget.rest_needed() == 0.0
    now["wall"] += 1.0
    now["cpu"] += 0.45  # 0.5 s of CPU in 2 s: rest until 0.5 s is 10% of the window
    assert budget.rest_needed() == pytest.approx(3.0)
    now["cpu"] += 10.0
    assert budget.rest_needed() == 30.0  # never longer than max_rest
    budget.restart()
    assert budget.rest_needed() == 0.0


async def test_a_shadow_forks_again_rather_than_queue_without_end(nats_url: str) -> None:
    """Under SCHED_IDLE on a busy machine a shadow can fall far behind; past ``refork_lag``
    it forks from live's latest state, and the records in between count as unread (they
    lower its coverage), instead of queueing until records are lost."""
    async with running_platform(nats_url, agents=("counter",)) as platform:
        runner = ShadowRunner(
            platform.nc, platform.js, "counter", "sha256:" + "0" * 64, counter, counter
        )
        await runner.fork()
        for _ in range(20):  # while the shadow does not read
            assert (await platform.send("counter", "increment", {"by": 1}))["ok"]
        await runner.fork_again()
        try:
            assert runner.seq == 20
            assert runner.counters.reforks == 1
            assert runner.counters.unread >= 20
            assert runner.counters.compared == 0
            assert (await platform.send("counter", "increment", {"by": 1}))["ok"]
            assert (await platform.send("counter", "increment", {"by": 1}))["ok"]

            async def compared() -> bool:
                return runner.counters.compared >= 1

            await eventually(compared, what="the shadow to compare after forking again")
            assert runner.live_state.model_dump()["value"] >= 21
        finally:
            await runner.stop()
