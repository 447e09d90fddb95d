"""A dataset from the agent's own recorded traffic: the last N requests of its WAL.

The agent's log is read once from the start with an ordered consumer: records are grouped
by the WAL sequence of their request; groups older than the window are folded into the state
by the starting version's code (the fork of live state the candidates start from), the last
N groups become the requests, each with live's recorded output to compare with.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from pydantic_core import to_jsonable_python

from o_bus.agent.definition import AgentDefinition
from o_bus.errors import AgentNotFoundError, StorageError
from o_bus.evolution.candidate.live_records import LiveRecord, decode, recorded_output
from o_bus.evolution.search.evaluate.dataset import Dataset, DatasetError, Request
from o_bus.store import layout
from o_bus.wire import headers as h
from o_bus.wire.codec import decode as decode_body
from o_bus.wire.codec import encoding_for
from o_bus.wire.wal_record import WalRecord

__all__ = ["wal_window"]

Group = tuple[int, list[LiveRecord]]


async def _groups(js: JetStreamContext, agent: str) -> list[Group]:
    stream = layout.events_stream(agent)
    try:
        info = await js.stream_info(stream)
    except nats.errors.Error as err:
        raise AgentNotFoundError(f"agent {agent!r} has no event log") from err
    last = info.state.last_seq
    groups: list[Group] = []
    if not info.state.messages:
        return groups
    done = asyncio.get_running_loop().create_future()

    async def on_msg(msg: Msg) -> None:
        headers = msg.headers or {}
        kind = msg.subject.split(".", 2)[1]
        if kind in ("evt", "outcome"):
            wal = int(headers.get(h.CE_WALSEQ, "0"))
            if not groups or groups[-1][0] != wal:
                groups.append((wal, []))
            groups[-1][1].append(LiveRecord(kind, dict(headers), msg.data))
        if msg.metadata.sequence.stream >= last and not done.done():
            done.set_result(None)

    sub = await js.subscribe(
        f"o.*.{agent}",
        stream=stream,
        cb=on_msg,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
    )
    try:
        await asyncio.wait_for(done, timeout=120)
    except TimeoutError as err:
        raise StorageError(f"reading the log of {agent!r} timed out") from err
    finally:
        await sub.unsubscribe()
    return groups


async def wal_window(
    nc: Client, js: JetStreamContext, agent: str, size: int, live: AgentDefinition[Any]
) -> Dataset:
    """The last ``size`` requests ``agent`` processed, from the state before the first."""
    del nc
    groups = await _groups(js, agent)
    window: deque[Group] = deque()
    state = live.initial_state()
    for group in groups:
        window.append(group)
        if len(window) > size:
            _, records = window.popleft()
            for record in records:
                if record.kind == "evt":
                    state = live.apply(state, decode(live, record))
    requests: list[Request] = []
    for wal_seq, records in window:
        if wal_seq == 0 or any(r.headers.get(h.O_OUTCOME) == "duplicate" for r in records):
            continue
        try:
            msg = await js.get_msg(layout.WAL_STREAM, wal_seq, direct=True)
        except nats.errors.Error:
            continue  # the WAL no longer holds it
        wal = WalRecord.from_stored(wal_seq, msg.headers, msg.data)
        data = decode_body(wal.data, encoding_for(wal.content_type)) if wal.data else None
        requests.append(
            Request(
                id=wal.request_id or f"wal-{wal_seq}",
                command=wal.command,
                data=to_jsonable_python(data),
                accepted_ns=wal.accepted_ns,
                output=recorded_output(records),
            )
        )
    if not requests:
        raise DatasetError(f"agent {agent!r} has no recorded request in its WAL to evaluate on")
    return Dataset(
        requests=tuple(requests),
        state=state.model_dump(mode="json"),
        origin=f"WAL of {agent}, last {size} requests",
    )
