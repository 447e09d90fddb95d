"""Debugging commands: send, state, history, fork, snapshot, agents."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from pydantic_core import from_json, to_json

from o_bus.cli.common import cli_connect, client_for, emit, json_argument
from o_bus.common.progress import Progress
from o_bus.errors import ErrorCode, InvalidRequestError
from o_bus.evolution.live_code import share_live_code
from o_bus.replay.fork import fork
from o_bus.replay.system_history import read_system_history
from o_bus.store import layout
from o_bus.store.registry import Registry

__all__ = [
    "cmd_agents",
    "cmd_fork",
    "cmd_history",
    "cmd_reset",
    "cmd_send",
    "cmd_snapshot",
    "cmd_state",
]


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
    data = json_argument(args.data, "command data")
    async with client_for(args) as bus:
        reply = await bus.send(
            args.agent,
            args.cmd,
            data,
            request_id=args.id,
            timeout=args.timeout,
            retries=args.retries,
            msgpack=args.msgpack,
        )
    emit(reply.as_wire(), args.json)
    return 0 if reply.ok else 1


async def cmd_state(args: argparse.Namespace) -> int:
    at_time = normalise_time(args.at_time) if args.at_time else None
    progress = Progress("replaying", unit="events")
    try:
        async with client_for(args) as bus:
            state = await bus.state(
                args.agent,
                at=args.at,
                at_time=at_time,
                definitions=args.agents or (),
                progress=progress,
            )
    finally:
        progress.close()
    emit(state.model_dump(mode="json"), args.json)
    return 0


async def cmd_history(args: argparse.Namespace) -> int:
    def show_system(record: dict[str, Any]) -> None:
        if args.json:
            sys.stdout.write(to_json(record).decode() + "\n")
            return
        what = record.get("type") or f"{record.get('previous')} -> {record.get('state')}"
        sys.stdout.write(
            f"{record.get('at', '')}  {record['kind']:<9}  {what:<24}  pid={record.get('pid')}  "
            f"{record.get('reason', '')}\n"
        )

    async with client_for(args) as bus:
        if args.system:
            await Registry(bus.js).get(args.agent)
            await read_system_history(bus.js, args.agent, show_system, follow=args.follow)
            sys.stdout.flush()
            return 0
        events = await bus.events(
            args.agent, from_seq=args.from_seq or 1, to_seq=args.to_seq, follow=args.follow
        )
        async for event in events:
            if args.json:
                sys.stdout.write(to_json(event.as_wire()).decode() + "\n")
            else:
                data = to_json(event.data).decode()
                sys.stdout.write(
                    f"{event.seq:>8}  {event.time}  {event.type} v{event.version}  "
                    f"req={event.request_id}  {data}\n"
                )
            if args.follow:
                sys.stdout.flush()
    sys.stdout.flush()
    return 0


async def cmd_fork(args: argparse.Namespace) -> int:
    async with cli_connect(args) as (nc, js):

        async def same_code() -> None:
            await share_live_code(js, args.agent, args.into, args.at)

        copied = await fork(nc, js, args.agent, args.at, args.into, before_register=same_code)
    emit({"ok": True, "agent": args.into, "forked_from": args.agent, "seq": copied}, args.json)
    return 0


async def cmd_snapshot(args: argparse.Namespace) -> int:
    async with cli_connect(args) as (nc, _):
        msg = await nc.request(layout.control_subject(args.agent, "snapshot"), b"", timeout=30)
    emit(from_json(msg.data), args.json)
    return 0


async def cmd_agents(args: argparse.Namespace) -> int:
    async with cli_connect(args) as (nc, js):
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
    if args.json:
        emit(rows, True)
        return 0
    if not rows:
        sys.stdout.write("no agents are registered\n")
        return 0
    sys.stdout.write(
        f"{'AGENT':<20} {'DEFINITION':<16} {'STATE':<12} {'SEQ':>8} {'CODE':<12} REQUESTS\n"
    )
    for row in rows:
        sys.stdout.write(agent_line(row) + "\n")
    return 0


def agent_line(row: dict[str, Any]) -> str:
    """One line of `o-bus agents`: name, definition, lifecycle, last seq, code, requests."""
    status = row.get("status") or {}
    origin = row.get("forked_from") or {}
    forked = f"  forked from {origin.get('agent')}@{origin.get('seq')}" if origin else ""
    return (
        f"{row['name']:<20} {row['definition']:<16} {status.get('lifecycle', 'not running'):<12} "
        f"{status.get('seq', ''):>8} {status.get('code_version', ''):<12} "
        f"{status.get('requests', '')}{forked}"
    )


async def cmd_reset(args: argparse.Namespace) -> int:
    """Ask the supervisor to restart an agent it escalated (after the cause is fixed)."""
    from o_bus.evolution.deploy import default_deployer
    from o_bus.platform.operator_actions import reset_agent

    async with cli_connect(args) as (nc, js):
        reply = await reset_agent(nc, js, args.agent, default_deployer(), args.reason)
    emit(reply, args.json)
    return 0 if reply.get("ok") else 1
