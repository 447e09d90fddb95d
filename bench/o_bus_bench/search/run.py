"""The measurements of ``o-bus bench evolution search``."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nats.aio.client import Client

from o_bus.evolution.search.config import SearchConfig
from o_bus.evolution.search.engine import run_search
from o_bus.evolution.search.evaluate.pool import EvaluationPool
from o_bus.evolution.search.evaluate.worker import EvaluationJob
from o_bus.evolution.search.lineage.events import Evaluated
from o_bus.evolution.search.lineage.stream import LineageStream
from o_bus.server.embedded import EmbeddedServer
from o_bus.store.provision import provision

__all__ = ["EXAMPLE", "Settings", "measure"]

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "autoscaler"
EXAMPLE = EXAMPLES / "autoscaler.py"
DATASET = EXAMPLES / "traffic.jsonl"


@dataclass
class Settings:
    workers: list[int]
    jobs_per_worker: int = 4
    seeds: int = 5
    budget: int = 40
    checkpoints: int = 4


@dataclass
class Report:
    cores: int
    throughput: dict[int, float] = field(default_factory=dict)  # workers -> evaluations/s
    curves: dict[str, list[list[float]]] = field(default_factory=dict)  # method -> per seed
    checkpoints: list[int] = field(default_factory=list)
    seconds: dict[str, list[float]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "cores": self.cores,
            "evaluations_per_s": {str(k): v for k, v in self.throughput.items()},
            "checkpoints": self.checkpoints,
            "best_fitness": self.curves,
            "seconds": self.seconds,
        }


async def _throughput(workers: int, jobs: int) -> float:
    pool = EvaluationPool(workers, timeout=60.0, memory_mb=512)
    job = EvaluationJob(
        candidate=EXAMPLE, baseline=EXAMPLE, dataset=DATASET, expected_name="autoscaler"
    )
    started = time.perf_counter()
    results = await asyncio.gather(*(pool.run(job) for _ in range(jobs)))
    elapsed = time.perf_counter() - started
    if any(r["outcome"] != "ok" for r in results):
        raise RuntimeError(f"an evaluation of the example failed: {results[0]}")
    return jobs / elapsed


def _curve(events: list[Any], checkpoints: list[int]) -> list[float]:
    """Best fitness after each checkpoint's number of evaluations, in recorded order."""
    best, seen, curve = float("-inf"), 0, []
    marks = iter(checkpoints)
    mark = next(marks, None)
    for event in events:
        if not isinstance(event, Evaluated) or event.cached_from is not None:
            continue
        seen += 1
        if event.fitness is not None:
            best = max(best, event.fitness)
        while mark is not None and seen >= mark:
            curve.append(best)
            mark = next(marks, None)
    while mark is not None:
        curve.append(best)
        mark = next(marks, None)
    return curve


async def measure(settings: Settings) -> Report:
    cores = len(os.sched_getaffinity(0))
    report = Report(cores=cores)
    for workers in settings.workers:
        report.throughput[workers] = await _throughput(workers, settings.jobs_per_worker * workers)
    step = max(1, settings.budget // settings.checkpoints)
    report.checkpoints = list(range(step, settings.budget + 1, step))
    with tempfile.TemporaryDirectory(prefix="o-bus-bench-search-") as folder:
        server = EmbeddedServer(Path(folder) / "nats")
        server.start()
        try:
            nc = Client()
            await nc.connect(server.url)
            js = nc.jetstream()
            await provision(js)
            lineage = LineageStream(js, "autoscaler")
            for method, operators in (
                ("search", ("genome", "ast", "crossover")),
                ("random", ("random",)),
            ):
                for seed in range(1, settings.seeds + 1):
                    config = SearchConfig(
                        agent="autoscaler",
                        source=EXAMPLE.read_text(),
                        filename="autoscaler.py",
                        dataset=DATASET,
                        generations=1000,
                        population=6,
                        islands=2,
                        max_evals=settings.budget,
                        workers=max(settings.workers),
                        seed=seed,
                        operators=operators,
                        deploy_best=False,
                        search_id=f"bench-{method}-{seed}",
                    )
                    started = time.perf_counter()
                    await run_search(nc, js, config)
                    report.seconds.setdefault(method, []).append(time.perf_counter() - started)
                    events = await lineage.read(config.search_id or "")
                    report.curves.setdefault(method, []).append(_curve(events, report.checkpoints))
            await nc.close()
        finally:
            server.stop()
    return report
