"""What a running search costs live traffic: ``counter`` at C=64 with and without a search.

One server run (:class:`o_bus_bench.stack.Stack`: embedded nats-server, `o-bus run splitter`,
`o-bus run agent counter`, the raw services). Each repeat measures, in turn, the raw floor,
live alone, and live while a search of the shipped example runs on the same machine and the
same server (all workers, no cache, so it keeps evaluating; its evaluation processes run
under SCHED_IDLE). Repeats alternate the three, so a drift of the machine touches them alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from o_bus.common.connect import connect
from o_bus.evolution.search.config import SearchConfig
from o_bus.evolution.search.engine import run_search
from o_bus.evolution.search.lineage.projection import SearchProjection
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


def _search(repeat: int) -> SearchConfig:
    return SearchConfig(
        agent="autoscaler",
        source=(EXAMPLES / "autoscaler.py").read_text(),
        filename="autoscaler.py",
        dataset=EXAMPLES / "traffic.jsonl",
        generations=100_000,
        population=6,
        islands=2,
        seed=repeat,
        cache=False,
        deploy_best=False,
        search_id=f"bench-cost-{repeat}",
    )


async def _measure(
    url: str, report: CostReport, repeats: int, warmup: float, duration: float, watch: Any
) -> None:
    watch_live, watch_raw = watch
    async with connect(url, "o-bus-bench-search-cost") as (nc, js):
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
            done: list[int] = [0]

            def progress(state: SearchProjection, planned: int, done: list[int] = done) -> None:
                done[0] = sum(1 for e in state.evaluations.values() if e.cached_from is None)

            search = asyncio.create_task(run_search(nc, js, _search(repeat), progress=progress))
            try:
                while done[0] < 2:  # the search is evaluating children, not starting up
                    if search.done():
                        search.result()
                    await asyncio.sleep(0.1)
                before = done[0]
                began = asyncio.get_running_loop().time()
                searching = await asyncio.to_thread(
                    run_level, url, PROJECT_SUBJECT, level, warmup=warmup, duration=duration,
                    watch=watch_live,
                )  # fmt: skip
                rate = (done[0] - before) / (asyncio.get_running_loop().time() - began)
            finally:
                search.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await search
                await asyncio.sleep(2.0)  # killed SCHED_IDLE evaluations exit when they get a core
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
