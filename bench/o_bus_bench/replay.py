"""Replay speed: a full rebuild of a counter from its log, beside a raw ordered consumer, and
the offline fold (``replay_history``) of the same log read into memory once.

The logs are written with pipelined raw publishes of well-formed events (the headers of
:func:`o_bus.store.event_log.event_headers`, body ``{"by":1}``). Each read runs in a fresh
process (``python -m o_bus_bench.replay``), so its peak RSS is the peak of that one replay.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Final

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from o_bus.agent.catalogue import Catalogue
from o_bus.common.connect import connect
from o_bus.common.event_loop import install_uvloop
from o_bus.replay.offline import replay_history
from o_bus.replay.rebuild import rebuild
from o_bus.store import layout
from o_bus.store.event_log import event_headers, utc_now
from o_bus.store.jetstream_event_log import JetStreamEventLog
from o_bus.store.log_record import LogRecord
from o_bus.store.provision import ensure_agent_stream
from o_bus_bench.errors import BenchError
from o_bus_bench.stats import ratio

__all__ = ["ReplayFigures", "ReplayRow", "measure_replay", "replay_agent", "write_log"]

DEFINITION: Final = "counter"
PENDING_MSGS: Final = 4096  # the same bound EventLog.replay uses, so memory stays flat
WINDOW: Final = 4096
MODES: Final = ("raw", "project", "offline")  # the order each repeat runs them in


def replay_agent(events: int) -> str:
    return f"bench-replay-{events}"


async def write_log(nc: Client, agent: str, count: int, timeout: float = 120.0) -> None:
    """Append ``count`` counter events to ``agent``'s log, ``WINDOW`` acknowledgements ahead."""
    definition = Catalogue.discover().get(DEFINITION)
    event_type = definition.event_types["incremented"]
    ack_subject = f"_OBENCHLOG.{uuid.uuid4().hex}"
    state = {"acked": 0, "refused": 0}
    progress = asyncio.Event()

    async def on_ack(msg: Msg) -> None:
        state["acked"] += 1
        if b'"error"' in msg.data:
            state["refused"] += 1
        progress.set()

    async def write() -> None:
        subject = layout.event_subject(agent)
        now = utc_now()
        for seq in range(1, count + 1):
            while seq - 1 - state["acked"] >= WINDOW:
                progress.clear()
                await progress.wait()
            headers = event_headers(
                agent,
                seq,
                event_type.event_type,
                event_type.event_version,
                f"bench-{seq}",
                seq,
                definition.version,
                now,
            )
            await nc.publish(subject, b'{"by":1}', reply=ack_subject, headers=headers)
        while state["acked"] < count:
            progress.clear()
            await progress.wait()

    sub = await nc.subscribe(ack_subject, cb=on_ack, pending_msgs_limit=1_000_000)
    try:
        await asyncio.wait_for(write(), timeout)
    except TimeoutError as err:
        raise BenchError(f"writing {count} events took more than {timeout}s") from err
    finally:
        await sub.unsubscribe()
    if state["refused"]:
        raise BenchError(f"{state['refused']} of {count} event appends were refused")


async def _read_project(nc: Client, js: JetStreamContext, agent: str, events: int) -> int:
    definition = Catalogue.discover().get(DEFINITION)
    rebuilt = await rebuild(definition, JetStreamEventLog(nc, js, agent), None)
    value = getattr(rebuilt.state, "value", None)
    if rebuilt.replayed != events or value != events:
        raise BenchError(f"rebuild saw {rebuilt.replayed} events, value {value}; expected {events}")
    return rebuilt.replayed


async def _load_records(js: JetStreamContext, agent: str, events: int) -> list[LogRecord]:
    """The agent's event records, read once with an ordered consumer into memory."""
    records: list[LogRecord] = []

    await _read_raw(js, agent, events, lambda msg: records.append(LogRecord.from_delivery(msg)))
    return records


def _fold_offline(records: list[LogRecord], agent: str, events: int) -> int:
    definition = Catalogue.discover().get(DEFINITION)
    folded = replay_history(definition, records, agent=agent)
    value = getattr(folded.state, "value", None)
    if folded.replayed != events or value != events:
        raise BenchError(f"offline fold saw {folded.replayed} events, value {value}")
    return folded.replayed


async def _read_raw(
    js: JetStreamContext, agent: str, events: int, each: Callable[[Msg], None] | None = None
) -> int:
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    seen = 0

    async def on_msg(msg: Msg) -> None:
        nonlocal seen
        seen += 1
        if each is not None:
            each(msg)
        if seen >= events and not done.done():
            done.set_result(None)

    sub = await js.subscribe(
        layout.event_subject(agent),
        stream=layout.events_stream(agent),
        cb=on_msg,
        ordered_consumer=True,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
        pending_msgs_limit=PENDING_MSGS,
    )
    try:
        await done
    finally:
        await sub.unsubscribe()
    return seen


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


async def _read(url: str, mode: str, events: int) -> dict[str, Any]:
    agent = replay_agent(events)
    async with connect(url, f"o-bus-bench-replay-{mode}") as (nc, js):
        Catalogue.discover()  # imports the definitions before the baseline RSS
        rss_before = _rss_mb()
        load_seconds = 0.0
        if mode == "offline":  # loading is not timed: the fold of records in memory is
            loaded = time.perf_counter()
            records = await _load_records(js, agent, events)
            load_seconds = time.perf_counter() - loaded
        started = time.perf_counter()
        if mode == "project":
            seen = await _read_project(nc, js, agent, events)
        elif mode == "offline":
            seen = _fold_offline(records, agent, events)
        else:
            seen = await _read_raw(js, agent, events)
        seconds = time.perf_counter() - started
    return {
        "mode": mode,
        "load_seconds": round(load_seconds, 4),
        "events": seen,
        "seconds": round(seconds, 4),
        "rate": round(seen / seconds, 1),
        "rss_before_mb": round(rss_before, 1),
        "rss_peak_mb": round(_rss_mb(), 1),
    }


def _read_in_process(url: str, mode: str, events: int) -> dict[str, Any]:
    cmd = [
        sys.executable,
        "-m",
        "o_bus_bench.replay",
        "--nats",
        url,
        "--mode",
        mode,
        "--events",
        str(events),
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    except subprocess.TimeoutExpired as err:
        raise BenchError(f"the {mode} replay of {events} events did not finish") from err
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise BenchError(
            f"the {mode} replay of {events} events failed (exit {done.returncode}):\n"
            + "\n".join(done.stderr.strip().splitlines()[-15:])
        )
    result: dict[str, Any] = json.loads(lines[-1])
    return result


@dataclass(slots=True)
class ReplayFigures:
    """Median rate over the repeats; the highest peak RSS seen."""

    rate: float
    seconds: float
    rss_before_mb: float
    rss_peak_mb: float
    load_seconds: float = 0.0  # offline only: reading the log into memory, not in ``rate``


@dataclass(slots=True)
class ReplayRow:
    events: int
    project: ReplayFigures
    raw: ReplayFigures
    offline: ReplayFigures

    @property
    def ratio(self) -> float:
        return ratio(self.project.rate, self.raw.rate)

    @property
    def offline_ratio(self) -> float:
        """Offline fold rate over the JetStream rebuild rate of the same run."""
        return ratio(self.offline.rate, self.project.rate)

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "ratio": round(self.ratio, 3),
            "offline_ratio": round(self.offline_ratio, 3),
        }


def _figures(runs: list[dict[str, Any]]) -> ReplayFigures:
    return ReplayFigures(
        rate=round(statistics.median(run["rate"] for run in runs), 1),
        seconds=round(statistics.median(run["seconds"] for run in runs), 4),
        rss_before_mb=max(run["rss_before_mb"] for run in runs),
        rss_peak_mb=max(run["rss_peak_mb"] for run in runs),
        load_seconds=round(statistics.median(run.get("load_seconds", 0.0) for run in runs), 4),
    )


def measure_replay(url: str, sizes: list[int], repeats: int) -> list[ReplayRow]:
    """Write one log per size, then replay each (raw, project, offline in turn) ``repeats``
    times."""

    async def write_all() -> None:
        async with connect(url, "o-bus-bench-writer") as (nc, js):
            for size in sizes:
                await ensure_agent_stream(js, replay_agent(size))
                await write_log(nc, replay_agent(size), size)

    asyncio.run(write_all())
    rows = []
    for size in sizes:
        runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
        for _ in range(repeats):
            for mode in MODES:
                runs[mode].append(_read_in_process(url, mode, size))
        rows.append(
            ReplayRow(
                size, _figures(runs["project"]), _figures(runs["raw"]), _figures(runs["offline"])
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m o_bus_bench.replay")
    parser.add_argument("--nats", required=True)
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--events", type=int, required=True)
    args = parser.parse_args(argv)
    install_uvloop()
    result = asyncio.run(_read(args.nats, args.mode, args.events))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
