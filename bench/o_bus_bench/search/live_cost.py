"""What a running search costs live traffic: ``counter`` at C=64 with and without a search.

One server run (:class:`o_bus_bench.stack.Stack`: embedded nats-server, `o-bus run splitter`,
`o-bus run agent counter`, the raw services). Each repeat measures, in turn, the raw floor,
live alone, and live while a search of the shipped example runs on the same machine and the
same server, as a user starts one: `o-bus evolve search` in its own process (all workers, no
cache, so it keeps evaluating; the engine and its evaluations run under SCHED_IDLE). Repeats
alternate the three, so a drift of the machine touches them alike.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from o_bus.common.connect import connect
from o_bus.evolution.search.lineage.events import Evaluated
from o_bus.evolution.search.lineage.stream import LineageStream
from o_bus_bench.errors import BenchError
from o_bus_bench.load import run_level
from o_bus_bench.stack import PROJECT_SUBJECT, RAW_SUBJECT, Stack
from o_bus_bench.stats import LevelResult

__all__ = ["CostReport", "measure_cost"]

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "autoscaler"


@dataclass
class CostReport:
    concurrency: int
    raw: list[LevelResult] = field(default_factory=list)
    quiet: list[LevelResult] = field(default_factory=list)
    searching: list[LevelResult] = field(default_factory=list)
    evaluations_per_s: list[float] = field(default_factory=list)  # of the search, under load

    @staticmethod
    def _median(values: list[float]) -> float:
        ranked = sorted(values)
        return ranked[(len(ranked) - 1) // 2] if ranked else 0.0

    def as_json(self) -> dict[str, Any]:
        quiet = self._median([r.rps for r in self.quiet])
        busy = self._median([r.rps for r in self.searching])
        return {
            "concurrency": self.concurrency,
            "raw_rps": self._median([r.rps for r in self.raw]),
            "live_rps": quiet,
            "live_rps_searching": busy,
            "live_p99_ms": self._median([r.p99_ms for r in self.quiet]),
            "live_p99_ms_searching": self._median([r.p99_ms for r in self.searching]),
            "cost": 1 - busy / quiet if quiet else None,
            "search_evaluations_per_s": self._median(self.evaluations_per_s),
            "runs": [
                {"raw": r.rps, "live": q.rps, "searching": s.rps, "evals_per_s": e}
                for r, q, s, e in zip(
                    self.raw, self.quiet, self.searching, self.evaluations_per_s, strict=True
                )
            ],
        }


def _search_command(url: str, repeat: int) -> list[str]:
    """`o-bus evolve search` of the shipped example, long enough to outlast the measurement."""
    return [
        sys.executable, "-m", "o_bus.cli.main", "evolve", "search", "autoscaler",
        "--nats", url, "--source", str(EXAMPLES / "autoscaler.py"),
        "--dataset", str(EXAMPLES / "traffic.jsonl"), "--generations", "100000",
        "--population", "6", "--islands", "2", "--seed", str(repeat), "--no-cache",
        "--no-deploy", "--resume", _search_id(repeat), "--json",
    ]  # fmt: skip


def _search_id(repeat: int) -> str:
    return f"bench-cost-{repeat}"


async def _evaluations(lineage: LineageStream, search: str) -> int:
    """Evaluations the search has recorded so far (copies of evaluated code excepted)."""
    return sum(
        1
        for event in await lineage.read(search)
        if isinstance(event, Evaluated) and event.cached_from is None
    )


async def _measure(
    url: str, report: CostReport, repeats: int, warmup: float, duration: float, watch: Any
) -> None:
    watch_live, watch_raw = watch
    async with connect(url, "o-bus-bench-search-cost") as (_, js):
        for repeat in range(repeats):
            level = report.concurrency
            raw = await asyncio.to_thread(
                run_level, url, RAW_SUBJECT, level, warmup=warmup, duration=duration,
                watch=watch_raw,
            )  # fmt: skip
            quiet = await asyncio.to_thread(
                run_level, url, PROJECT_SUBJECT, level, warmup=warmup, duration=duration,
                watch=watch_live,
            )  # fmt: skip
            search_id = _search_id(repeat)
            lineage = LineageStream(js, "autoscaler")
            search = await asyncio.create_subprocess_exec(
                *_search_command(url, repeat),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                while await _evaluations(lineage, search_id) < 2:  # evaluating, not starting up
                    if search.returncode is not None:
                        raise BenchError(f"the search exited with code {search.returncode}")
                    await asyncio.sleep(0.1)
                before = await _evaluations(lineage, search_id)
                began = asyncio.get_running_loop().time()
                searching = await asyncio.to_thread(
                    run_level, url, PROJECT_SUBJECT, level, warmup=warmup, duration=duration,
                    watch=watch_live,
                )  # fmt: skip
                done = await _evaluations(lineage, search_id)
                rate = (done - before) / (asyncio.get_running_loop().time() - began)
            finally:
                # Ctrl-C: the search stops and kills the evaluations it is running.
                os.killpg(search.pid, signal.SIGINT)
                try:
                    await asyncio.wait_for(search.wait(), 10.0)
                except TimeoutError:
                    os.killpg(search.pid, signal.SIGKILL)
                    await search.wait()
            report.raw.append(raw)
            report.quiet.append(quiet)
            report.searching.append(searching)
            report.evaluations_per_s.append(rate)
            print(
                f"C={level} raw {raw.rps:,.0f}/s, live {quiet.rps:,.0f}/s, live while a search "
                f"runs {searching.rps:,.0f}/s ({rate:.2f} evaluations/s)",
                file=sys.stderr,
                flush=True,
            )


def measure_cost(
    work_dir: Path, concurrency: int, repeats: int, warmup: float, duration: float
) -> CostReport:
    """Live throughput at ``concurrency`` beside the raw floor, with and without a search."""
    report = CostReport(concurrency)
    with Stack(work_dir, None) as stack:
        pids = stack.pids()
        watch_live = {role: pids[role] for role in ("server", "splitter", "agent")}
        watch_raw = {
            "server": pids["server"],
            "splitter": pids["raw-splitter"],
            "agent": pids["raw-agent"],
        }
        asyncio.run(_measure(stack.url, report, repeats, warmup, duration, (watch_live, watch_raw)))
    return report
