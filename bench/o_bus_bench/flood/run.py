"""One flood run against a running splitter and agent: the victim alone, the victim during a
flood from another process, how long until nothing waits any more, the victim after."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats.errors
from nats.aio.client import Client

from o_bus.common.children import ChildProcess
from o_bus.store import layout
from o_bus_bench.flood.victim import VictimFigures, victim, victim_beside_floor
from o_bus_bench.replies import all_replies

__all__ = ["FloodRun", "intake_figures", "run_flood", "until_drained"]

DRAIN_TIMEOUT = 120.0


@dataclass(slots=True)
class FloodRun:
    unloaded: VictimFigures
    during: VictimFigures
    after: VictimFigures
    floor_during: VictimFigures | None  # the raw path during the flood, when measured
    flood: dict[str, float]  # what the flooder sent (sent, valid, invalid, seconds)
    recovery_s: float  # flood end -> nothing accepted still waits for the agent
    intake: dict[str, Any]  # the splitter's figures at the end

    def refused_without_reply(self) -> int:
        return sum(n for k, n in self.intake["refused"].items() if k.endswith("/dropped"))

    def summary(self) -> dict[str, Any]:
        return {
            "flood": self.flood,
            "unloaded": self.unloaded.summary(),
            "during": self.during.summary(),
            "raw_during": self.floor_during.summary() if self.floor_during else None,
            "after": self.after.summary(),
            "recovery_s": round(self.recovery_s, 2),
            "intake": self.intake,
        }


async def intake_figures(nc: Client, splitters: int = 1) -> dict[str, Any]:
    """The intake figures of ``splitters`` splitters (their status replies), added up."""
    subject = layout.service_status_subject("splitter")
    replies = await all_replies(nc, subject, splitters)
    return _added_up([reply["intake"] for reply in replies])


def _added_up(figures: list[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {}
    for one in figures:
        for key, value in one.items():
            if isinstance(value, dict):
                counts = total.setdefault(key, {})
                for name, n in value.items():
                    counts[name] = counts.get(name, 0) + n
            else:
                total[key] = total.get(key, 0) + value
    return total


async def until_drained(
    nc: Client, agent: str, splitters: int = 1, timeout: float = DRAIN_TIMEOUT
) -> float:
    """Seconds until no splitter has anything of ``agent``'s waiting (WAL or agent)."""
    started = time.monotonic()
    figures: dict[str, Any] = {}
    while time.monotonic() - started < timeout:
        figures = await intake_figures(nc, splitters)
        if not figures["waiting_for_wal"] and not figures["outstanding"].get(agent, 0):
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    try:
        status = await nc.request(layout.control_subject(agent, "status"), b"", timeout=5.0)
        said = status.data.decode(errors="replace")[:2000]
    except nats.errors.Error as err:
        said = f"no answer: {err!r}"
    raise TimeoutError(
        f"{agent}'s intake still not drained after {timeout}s: splitter {figures}; agent {said}"
    )


async def run_flood(
    nc: Client,
    url: str,
    *,
    agent: str,
    count: int,
    invalid_every: int,
    seconds: float,
    log_dir: Path,
    splitters: int = 1,
    floor_subject: str | None = None,
) -> FloodRun:
    """Victim alone for ``seconds``, then during a flood of ``count`` requests, then after.
    With ``floor_subject`` (the raw path), the victim's requests during the flood alternate
    with requests there."""
    subject = layout.request_subject(agent)
    deadline = time.monotonic() + seconds
    unloaded = await victim(nc, subject, lambda: time.monotonic() > deadline)
    log_path = log_dir / "flooder.log"
    argv = [sys.executable, "-m", "o_bus_bench.flood.flooder", "--nats", url, "--agent", agent]
    flooder = ChildProcess(
        "flooder",
        [*argv, "--count", str(count), "--invalid-every", str(invalid_every)],
        log_path,
    )

    def flood_over() -> bool:
        return not flooder.running()

    try:
        during, floor_during = await victim_beside_floor(
            nc, subject, floor_subject, flood_over, at_least=5
        )
        if flooder.wait(60.0) != 0:
            raise RuntimeError(flooder.exited() or "the flooder failed")
    finally:
        flooder.kill()
    recovery_s = await until_drained(nc, agent, splitters)
    deadline = time.monotonic() + seconds
    after = await victim(nc, subject, lambda: time.monotonic() > deadline)
    sent = json.loads(log_path.read_text().strip().splitlines()[-1])
    intake = await intake_figures(nc, splitters)
    return FloodRun(unloaded, during, after, floor_during, sent, recovery_s, intake)
