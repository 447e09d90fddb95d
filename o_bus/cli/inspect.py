"""Debugging commands: send, state, history, fork, snapshot, agents."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from pydantic_core import from_json, to_json

from o_bus import client
from o_bus.agent.catalogue import Catalogue
from o_bus.cli.common import emit
from o_bus.common.connect import connect
from o_bus.common.urls import resolve_url
from o_bus.errors import ErrorCode, InvalidRequestError
from o_bus.evolution.live_code import route_definition, share_live_code
from o_bus.replay.fork import fork
from o_bus.replay.rebuild import rebuild
from o_bus.replay.system_history import read_system_history
from o_bus.store import layout
from o_bus.store.event_log import StoredEvent
from o_bus.store.jetstream_event_log import JetStreamEventLog
from o_bus.store.registry import Registry
from o_bus.store.snapshots import SnapshotStore
from o_bus.wire.codec import Encoding

__all__ = [
    "cmd_agents",
    "cmd_fork",
    "cmd_history",
    "cmd_reset",
    "cmd_send",
    "cmd_snapshot",
    "cmd_state",
]


def _progress(count: int) -> None:
    sys.stderr.write(f"\rreplayed {count:,} events")
    sys.stderr.flush()


def normalise_time(text: str) -> str:
    """Accept ISO-8601 (with Z or an offset; naive means UTC) and return the log's format."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as err:
        raise InvalidRequestError(
            ErrorCode.MALFORMED_REQUEST, f"--at-time {text!r} is not an ISO-8601 time"
        ) from err
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


async def cmd_send(args: argparse.Namespace) -> int:
    data: Any = from_json(args.data) if args.data else None
    encoding = Encoding.MSGPACK if args.msgpack else Encoding.JSON
    async with connect(resolve_url(args.nats), "o-bus-cli") as (nc, _):
        reply = await client.send(
            nc,
            args.agent,
            args.cmd,
            data,
            request_id=args.id,
            encoding=encoding,
            timeout=args.timeout,
        )
    emit(reply, args.json)
    return 0 if reply.get("ok") else 1


async def cmd_state(args: argparse.Namespace) -> int:
    at_time = normalise_time(args.at_time) if args.at_time else None
    async with connect(resolve_url(args.nats), "o-bus-cli") as (nc, js):
        record = await Registry(js).get(args.agent)
        registered = Catalogue.discover(args.agents).get(record.definition)
        definition, live = await route_definition(js, args.agent, registered)
        rebuilt = await rebuild(
            definition,
            JetStreamEventLog(nc, js, args.agent),
            SnapshotStore(js),
            at_seq=args.at,
            at_time=at_time,
            progress=None if args.json else _progress,
        )
    if rebuilt.replayed >= 10_000 and not args.json:
        sys.stderr.write("\n")
    emit(
        {
            "agent": args.agent,
            "definition": record.definition,
            "code_version": definition.version,
            "live": live,
            "seq": rebuilt.position.seq,
            "state": rebuilt.state.model_dump(mode="json"),
            "from_snapshot": rebuilt.snapshot.seq if rebuilt.snapshot else None,
            "replayed": rebuilt.replayed,
        },
        args.json,
    )
    return 0


async def cmd_history(args: argparse.Namespace) -> int:
    first, last = args.from_seq or 1, args.to_seq

    def show(event: StoredEvent) -> bool:
        if event.seq < first:
            return False
        if last is not None and event.seq > last:
            return True
        if args.json:
            sys.stdout.write(to_json(event.as_dict()).decode() + "\n")
        else:
            data = event.data.decode(errors="replace")
            sys.stdout.write(
                f"{event.seq:>8}  {event.time}  {event.type} v{event.version}  "
                f"req={event.request_id}  {data}\n"
            )
        return last is not None and event.seq >= last

    def show_system(record: dict[str, Any]) -> None:
        if args.json:
            sys.stdout.write(to_json(record).decode() + "\n")
            return
        what = record.get("type") or f"{record.get('previous')} -> {record.get('state')}"
        sys.stdout.write(
            f"{record.get('at', '')}  {record['kind']:<9}  {what:<24}  pid={record.get('pid')}  "
            f"{record.get('reason', '')}\n"
        )

    async with connect(resolve_url(args.nats), "o-bus-cli") as (nc, js):
        await Registry(js).get(args.agent)
        if args.system:
            await read_system_history(js, args.agent, show_system, follow=args.follow)
        else:
            await JetStreamEventLog(nc, js, args.agent).replay(show, follow=args.follow)
    sys.stdout.flush()
    return 0


async def cmd_fork(args: argparse.Namespace) -> int:
    async with connect(resolve_url(args.nats), "o-bus-cli") as (nc, js):

        async def same_code() -> None:
            await share_live_code(js, args.agent, args.into, args.at)

        copied = await fork(nc, js, args.agent, args.at, args.into, before_register=same_code)
    emit({"ok": True, "agent": args.into, "forked_from": args.agent, "seq": copied}, args.json)
    return 0


async def cmd_snapshot(args: argparse.Namespace) -> int:
    async with connect(resolve_url(args.nats), "o-bus-cli") as (nc, _):
        msg = await nc.request(layout.control_subject(args.agent, "snapshot"), b"", timeout=30)
    emit(from_json(msg.data), args.json)
    return 0


async def cmd_agents(args: argparse.Namespace) -> int:
    async with connect(resolve_url(args.nats), "o-bus-cli") as (nc, js):
        records = await Registry(js).all()
        rows = []
        for record in records:
            row: dict[str, Any] = record.model_dump()
            try:
                msg = await nc.request(
                    layout.control_subject(record.name, "status"), b"", timeout=1
                )
                row["status"] = from_json(msg.data)
            except Exception:  # no worker answering is a normal answer here
                row["status"] = None
            rows.append(row)
    emit(rows, args.json)
    return 0


async def cmd_reset(args: argparse.Namespace) -> int:
    """Ask the supervisor to restart an agent it escalated (after the cause is fixed)."""
    from o_bus.evolution.deploy import default_deployer
    from o_bus.platform.operator_actions import reset_agent

    async with connect(resolve_url(args.nats), "o-bus-cli") as (nc, js):
        reply = await reset_agent(nc, js, args.agent, default_deployer(), args.reason)
    emit(reply, args.json)
    return 0 if reply.get("ok") else 1
