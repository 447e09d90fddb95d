"""`o-bus ps`: the agent processes running now, from their heartbeats and the supervisor's view.

Listens to heartbeats (``o.hb.>``) for a short sample (0.5 s by default, ``args.sample``) while
reading the registry and, when it exists, the supervisor's bucket ``o_supervisor``. One entry per
agent, with one line per process: pid, role, code version, lifecycle state, uptime, heartbeat
age; and per agent its restarts and whether a standby is up. A process the supervisor lists but
that sent no heartbeat during the sample is shown with ``"heartbeat": false``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, NoKeysError
from pydantic import ValidationError

from o_bus.cli.common import cli_connect, emit
from o_bus.errors import OBusError
from o_bus.runtime.heartbeat import Heartbeat
from o_bus.store import layout
from o_bus.store.registry import AgentRecord, Registry
from o_bus.supervision.records import AgentSupervision

__all__ = ["DEFAULT_SAMPLE_SECONDS", "build", "cmd_ps", "collect", "format_table"]

log = logging.getLogger(__name__)

DEFAULT_SAMPLE_SECONDS = 0.5
_ROLE_ORDER = {"active": 0, "standby": 1, "starting": 2}


async def cmd_ps(args: argparse.Namespace) -> int:
    sample = getattr(args, "sample", None)
    sample = DEFAULT_SAMPLE_SECONDS if sample is None else max(0.0, float(sample))
    async with cli_connect(args, "o-bus-ps") as (nc, js):
        agents = await collect(nc, js, sample=sample)
    if args.json:
        emit(agents, True)
    else:
        sys.stdout.write(format_table(agents))
        sys.stdout.flush()
    return 0


async def collect(
    nc: Client, js: JetStreamContext, *, sample: float = DEFAULT_SAMPLE_SECONDS
) -> list[dict[str, Any]]:
    """One entry per known agent (registered, supervised, or heard from during ``sample``)."""
    beats: dict[tuple[str, str], Heartbeat] = {}

    async def on_heartbeat(msg: Msg) -> None:
        agent = msg.subject[len(layout.HEARTBEAT_PREFIX) :]
        try:
            beat = Heartbeat.model_validate_json(msg.data)
        except ValidationError:
            return
        if beat.agent != agent:
            return
        key = (agent, beat.holder or f"pid:{beat.pid}")
        known = beats.get(key)
        if known is None or beat.sent_at >= known.sent_at:
            beats[key] = beat

    started = time.monotonic()
    sub = await nc.subscribe(layout.HEARTBEAT_PREFIX + ">", cb=on_heartbeat)
    try:
        records, supervision = await asyncio.gather(_registry(js), _supervision(js))
        await asyncio.sleep(max(0.0, sample - (time.monotonic() - started)))
    finally:
        await sub.unsubscribe()
    return build(records, supervision, list(beats.values()), time.time())


async def _registry(js: JetStreamContext) -> dict[str, AgentRecord]:
    try:
        return {record.name: record for record in await Registry(js).all()}
    except OBusError as err:
        log.warning("registry unavailable: %s", err.message)
        return {}


async def _supervision(js: JetStreamContext) -> dict[str, AgentSupervision]:
    """The supervisor's records, or nothing when its bucket does not exist (yet)."""
    try:
        kv = await js.key_value(layout.SUPERVISOR_BUCKET)
        keys = await kv.keys()
    except NoKeysError:
        return {}
    except nats.errors.Error:
        return {}
    found: dict[str, AgentSupervision] = {}
    for key in keys:
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            continue
        if not entry.value:
            continue
        try:
            found[key] = AgentSupervision.model_validate_json(entry.value)
        except ValidationError:
            log.warning("ignored an invalid %s entry %.100r", layout.SUPERVISOR_BUCKET, key)
    return found


def build(
    records: dict[str, AgentRecord],
    supervision: dict[str, AgentSupervision],
    beats: list[Heartbeat],
    now: float,
) -> list[dict[str, Any]]:
    """The ps entries from what was read; pure, ``now`` is unix time."""
    by_agent: dict[str, list[Heartbeat]] = {}
    for beat in beats:
        by_agent.setdefault(beat.agent, []).append(beat)
    agents: list[dict[str, Any]] = []
    for name in sorted(set(records) | set(supervision) | set(by_agent)):
        record, supervised = records.get(name), supervision.get(name)
        processes = [_process(beat, now) for beat in by_agent.get(name, [])]
        seen_pids = {process["pid"] for process in processes}
        # The supervisor knows which host (named by `o-bus run host`) runs each process.
        hosts = {info.pid: info.host for info in supervised.processes} if supervised else {}
        for process in processes:
            process["host"] = hosts.get(process["pid"], process["host"])
        for info in supervised.processes if supervised else []:
            if info.pid not in seen_pids:
                processes.append(
                    {
                        "pid": info.pid,
                        "role": "standby" if info.standby else "active",
                        "code_version": None,
                        "lifecycle": None,
                        "uptime_s": round(max(0.0, now - info.started_at), 3),
                        "heartbeat_age_s": None,
                        "heartbeat": False,
                        "holder": None,
                        "host": info.host,
                        "rss_bytes": None,
                        "seq": None,
                        "wal_backlog": None,
                    }
                )
        processes.sort(key=lambda p: (_ROLE_ORDER.get(p["role"], 9), p["pid"]))
        agents.append(
            {
                "agent": name,
                "registered": record is not None,
                "definition": record.definition if record else None,
                "status": supervised.status if supervised else None,
                "reason": supervised.reason if supervised else "",
                "restarts": supervised.restarts if supervised else None,
                "standby": any(p["role"] == "standby" and p["heartbeat"] for p in processes),
                "processes": processes,
            }
        )
    return agents


def _process(beat: Heartbeat, now: float) -> dict[str, Any]:
    host = beat.holder.rsplit(":", 2)[0] if beat.holder.count(":") >= 2 else None
    return {
        "pid": beat.pid,
        "role": beat.role,
        "code_version": beat.code_version,
        "lifecycle": beat.lifecycle,
        "uptime_s": round(max(0.0, now - beat.started_at), 3),
        "heartbeat_age_s": round(max(0.0, now - beat.sent_at), 3),
        "heartbeat": True,
        "holder": beat.holder,
        "host": host,
        "rss_bytes": beat.rss_bytes,
        "seq": beat.seq,
        "wal_backlog": beat.wal_backlog,
    }


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def _text(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def format_table(agents: list[dict[str, Any]]) -> str:
    """A fixed-width table, one line per process (an agent without processes gets one line)."""
    header = (
        "AGENT",
        "PID",
        "ROLE",
        "VERSION",
        "LIFECYCLE",
        "UPTIME",
        "RESTARTS",
        "STANDBY",
        "HEARTBEAT",
        "HOST",
        "STATUS",
    )
    rows: list[tuple[str, ...]] = [header]
    for agent in agents:
        status = _text(agent["status"])
        if agent["reason"]:
            status = f"{status} ({agent['reason']})"
        common = (_text(agent["restarts"]), "yes" if agent["standby"] else "no")
        if not agent["processes"]:
            rows.append((agent["agent"], "-", "-", "-", "-", "-", *common, "-", "-", status))
        for process in agent["processes"]:
            age = process["heartbeat_age_s"]
            rows.append(
                (
                    agent["agent"],
                    str(process["pid"]),
                    process["role"],
                    _text(process["code_version"]),
                    _text(process["lifecycle"]),
                    _duration(process["uptime_s"]),
                    *common,
                    "none" if age is None else f"{age:.2f}s ago",
                    _text(process["host"]),
                    status,
                )
            )
    if len(rows) == 1:
        return "no agents\n"
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines) + "\n"
