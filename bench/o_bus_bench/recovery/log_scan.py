"""A read of the agent's whole stream after a run: its fences, and whether the log is intact."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from nats.aio.client import Client
from nats.aio.msg import Msg

from o_bus.store import layout
from o_bus_bench.stack import AGENT

__all__ = ["Fence", "LogScan", "scan_log"]


@dataclass(slots=True, frozen=True)
class Fence:
    stream_seq: int
    pid: int
    events_before: int  # the agent sequence reached when this fence was written


@dataclass(slots=True)
class LogScan:
    fences: list[Fence] = field(default_factory=list)
    events: int = 0
    problems: list[str] = field(default_factory=list)
    request_ids: set[str] = field(default_factory=set)


async def scan_log(nc: Client, agent: str = AGENT) -> LogScan:
    """Read the agent's whole stream (events, outcomes, fences) in order: the fences, and
    whether event sequences are contiguous and no request was applied twice."""
    js = nc.jetstream()
    stream = layout.events_stream(agent)
    info = await js.stream_info(stream)
    last = info.state.last_seq
    scan = LogScan()
    if not info.state.messages:
        return scan
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    event_subject, fence_subject = layout.event_subject(agent), layout.fence_subject(agent)

    async def on_msg(msg: Msg) -> None:
        assert msg.metadata.sequence is not None
        stream_seq = msg.metadata.sequence.stream
        headers = msg.headers or {}
        if msg.subject == fence_subject:
            holder = headers.get("O-Holder", "")
            parts = holder.split(":")
            pid = int(parts[-2]) if len(parts) >= 3 and parts[-2].isdigit() else 0
            scan.fences.append(Fence(stream_seq, pid, scan.events))
        elif msg.subject == event_subject:
            scan.events += 1
            seq = int(headers.get("ce-sequence", "0"))
            if seq != scan.events and len(scan.problems) < 10:
                scan.problems.append(f"event sequence {seq} where {scan.events} was expected")
            request_id = headers.get("ce-requestid", "")
            if request_id in scan.request_ids and len(scan.problems) < 10:
                scan.problems.append(f"request {request_id} applied twice")
            scan.request_ids.add(request_id)
        if stream_seq >= last and not done.done():
            done.set_result(None)

    sub = await js.subscribe(
        layout.agent_log_wildcard(agent),
        stream=stream,
        cb=on_msg,
        ordered_consumer=True,
        pending_msgs_limit=65536,
    )
    try:
        await asyncio.wait_for(done, 120.0)
    finally:
        await sub.unsubscribe()
    return scan
