"""A shadow reads every record of live's log once, in order, or says it lost some.

nats-py drops what a slow subscriber cannot queue after the ordered consumer has counted it,
so a shadow that fell far behind would otherwise go on from a state missing live's events.
"""

from __future__ import annotations

from dataclasses import dataclass

from o_bus.agents.counter import counter
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
    await runner._on_record(delivery(1))  # type: ignore[arg-type]
    await runner._on_record(delivery(1))  # type: ignore[arg-type]
    await runner._on_record(delivery(2, "fence"))  # type: ignore[arg-type]
    assert not runner.failed.done()
    assert [record.headers[H_WAL] for record in runner._group] == ["1"]


async def test_a_gap_in_the_log_fails_the_shadow_with_the_missing_records() -> None:
    runner = shadow()
    await runner._on_record(delivery(1))  # type: ignore[arg-type]
    await runner._on_record(delivery(5))  # type: ignore[arg-type]
    assert runner.failed.done()
    reason = runner.failed.result()
    assert "fell too far behind live" in reason
    assert "records 2..4" in reason
    assert [record.headers[H_WAL] for record in runner._group] == ["1"]
