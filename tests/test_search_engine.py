"""The search engine end to end on a real nats-server with real sandboxed evaluations:
reproducible with a seed, its archive rebuilt from the lineage stream, resumable after kill -9,
its best version deployed."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client
from search_support import DATASET, EXAMPLE, small_config
from support import eventually, running_platform

from o_bus.agent.catalogue import Catalogue, load_definition
from o_bus.cli.up import register_definitions
from o_bus.evolution.code_store import CodeStore, default_cache_dir
from o_bus.evolution.deploy import deploy
from o_bus.evolution.routes import RouteStore
from o_bus.evolution.search import run_search, run_triggered_search
from o_bus.evolution.search.evaluate.cache import (
    Checkpoint,
    EvaluationCache,
    chain_keys,
    checkpoints,
)
from o_bus.evolution.search.evaluate.dataset import Dataset
from o_bus.evolution.search.evaluate.pool import EvaluationPool
from o_bus.evolution.search.evaluate.worker import SMOKE, EvaluationJob
from o_bus.evolution.search.lineage.events import Evaluated
from o_bus.evolution.search.lineage.projection import project
from o_bus.evolution.search.lineage.stream import LineageStream
from o_bus.store.provision import provision


@pytest.mark.timeout(1200)  # evaluations only get idle CPU: slow on a busy machine, not stuck
async def test_same_seed_same_search_and_the_stream_rebuilds_the_archive(nc: Client) -> None:
    js = nc.jetstream()
    await provision(js)
    await register_definitions(js, Catalogue([load_definition(str(EXAMPLE))]))
    first = await run_search(nc, js, small_config(search_id="first", deploy_best=True))
    second = await run_search(nc, js, small_config(search_id="second"))
    assert first.baseline_fitness is not None
    assert first.best_fitness is not None
    assert first.best_fitness >= first.baseline_fitness
    lineage = LineageStream(js, "autoscaler")
    one, two = project(await lineage.read("first")), project(await lineage.read("second"))
    assert one.archive is not None
    assert two.archive is not None
    assert one.archive.snapshot() == two.archive.snapshot()
    assert one.fitness == two.fitness
    assert one.populations == two.populations
    assert (second.best_child, second.best_fitness) == (first.best_child, first.best_fitness)
    # Folding the stream again gives the same archive; nothing was recorded twice.
    again = project(await lineage.read("first"))
    assert again.archive is not None
    assert again.archive.snapshot() == one.archive.snapshot()
    assert one.duplicates == 0
    # The best child is a deployed code version whose source is the child's.
    if first.best_child is not None and first.best_child != "root":
        assert first.best_version is not None
        code = CodeStore(js, default_cache_dir())
        stored = await code.fetch(first.best_version)
        assert stored.read_text() == one.children[first.best_child].source


@dataclass(frozen=True)
class TriggerBudget:
    max_evaluations: int
    cpu_seconds: float
    wall_seconds: float


@dataclass(frozen=True)
class TriggerRequest:
    agent: str
    search_id: str
    reason: str
    budget: TriggerBudget
    nats_url: str


SEARCH_PROCESS = textwrap.dedent(
    """
    import asyncio, sys
    sys.path.insert(0, {tests!r})
    from nats.aio.client import Client
    from search_support import small_config
    from o_bus.evolution.search import run_search

    async def main():
        nc = Client()
        await nc.connect({url!r})
        await run_search(nc, nc.jetstream(), small_config(search_id="killed", generations=3))

    asyncio.run(main())
    """
)


@pytest.mark.timeout(1200)  # evaluations only get idle CPU: slow on a busy machine, not stuck
async def test_kill_9_then_resume_gives_the_uninterrupted_archive(
    nc: Client, nats_url: str
) -> None:
    js = nc.jetstream()
    await provision(js)  # the search reads the agent's regression set
    lineage = LineageStream(js, "autoscaler")
    await lineage.ensure()
    tests = os.path.dirname(__file__)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SEARCH_PROCESS.format(tests=tests, url=nats_url)
    )

    async def some_evaluated() -> bool:
        assert process.returncode is None, "the search process ended before it was killed"
        events = await lineage.read("killed")
        return sum(isinstance(e, Evaluated) for e in events) >= 4

    try:
        # Evaluations run under SCHED_IDLE: on a busy machine they wait for idle CPU, so the
        # hang guard here is generous.
        await eventually(some_evaluated, what="four recorded evaluations", timeout=600)
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    before = project(await lineage.read("killed"))
    assert before.finished is None, "the search ended before it was killed: nothing to resume"
    resumed = await run_search(nc, js, small_config(search_id="killed", generations=3))
    assert resumed.resumed
    reference = await run_search(nc, js, small_config(search_id="reference", generations=3))
    after = project(await lineage.read("killed"))
    whole = project(await lineage.read("reference"))
    assert after.duplicates == 0
    assert after.archive is not None
    assert whole.archive is not None
    assert after.archive.snapshot() == whole.archive.snapshot()
    assert after.fitness == whole.fitness
    # Evaluations finished before the kill were kept, not run again.
    for child, evaluation in before.evaluations.items():
        assert after.evaluations[child] == evaluation
    assert (resumed.best_child, resumed.best_fitness) == (
        reference.best_child,
        reference.best_fitness,
    )


async def test_a_search_on_the_agents_own_wal_window(nats_url: str) -> None:
    async with running_platform(
        nats_url, agents=("autoscaler",), extra_definitions=(str(EXAMPLE),)
    ) as platform:
        await platform.wait_for_route("autoscaler")
        loads = [120.0, 480.0, 950.0, 900.0, 300.0, 60.0, 0.0, 700.0]
        for load in loads:
            reply = await platform.send("autoscaler", "observe", {"load": load})
            assert reply["ok"], reply
        window = small_config(
            dataset=None, window=5, search_id="window", generations=1, population=2, islands=1
        )
        result = await run_search(platform.nc, platform.js, window)
        state = project(await LineageStream(platform.js, "autoscaler").read("window"))
        # A self-trigger's request: the engine starts from the code version live serves.
        version = await deploy(platform.js, "autoscaler", EXAMPLE, by="test")
        await RouteStore(platform.js).update(
            "autoscaler",
            lambda route: route.model_copy(update={"live": version.digest}),
            by="test",
            reason="serve the deployed copy",
        )
        request = TriggerRequest(
            "autoscaler", "triggered", "fitness below 0.7", TriggerBudget(3, 60.0, 120.0), nats_url
        )
        triggered = await run_triggered_search(request)
        traced = project(await LineageStream(platform.js, "autoscaler").read("triggered"))
    assert triggered["evaluations"] <= 3
    assert triggered["baseline_fitness"] is not None
    assert traced.finished is not None
    assert traced.finished.reason.startswith("evaluation budget spent")
    assert result.baseline_fitness is not None
    assert state.started is not None
    assert "WAL of autoscaler" in state.started.dataset_origin
    root = state.evaluations["root"]
    # The starting version is live's own code: it agrees with every output live recorded.
    assert root.figures["requests"] == 5
    assert root.figures["agreement"] == 1.0


@pytest.mark.timeout(600)
async def test_a_search_stops_at_each_budget_and_records_why(nc: Client) -> None:
    """Evaluations, CPU seconds of evaluation and wall time: the first budget reached ends the
    search (checked before each generation, so no generation starts after it), and its reason
    is the recorded end of the search."""
    js = nc.jetstream()
    await provision(js)
    budgets: dict[str, tuple[dict[str, float], str]] = {
        "evals": ({"max_evals": 4}, "evaluation budget spent (4)"),
        "cpu": ({"max_cpu_seconds": 0.001}, "CPU budget spent"),
        "wall": ({"max_seconds": 0.001}, "wall-time budget spent"),
    }
    for name, (budget, why) in budgets.items():
        config = small_config(search_id=f"budget-{name}", generations=5, **budget)
        result = await run_search(nc, js, config)
        assert result.stop_reason is not None
        assert result.stop_reason.startswith(why), result.stop_reason
        assert result.evaluations == (4 if name == "evals" else 1)  # 1: the starting version
        state = project(await LineageStream(js, "autoscaler").read(f"budget-{name}"))
        assert state.finished is not None
        assert state.finished.reason == result.stop_reason
        assert state.finished.evaluations == result.evaluations
        assert len([e for e in state.evaluations.values() if e.cached_from is None]) <= 4


@pytest.mark.timeout(600)
async def test_evaluations_are_cached_by_candidate_and_request(nc: Client, tmp_path: Path) -> None:
    """A second search on the same dataset decides no request again for code already
    evaluated; a child pruned at the minibatch and then evaluated in full decides only the
    requests after the minibatch; the figures are those of a fresh evaluation."""
    js = nc.jetstream()
    await provision(js)
    config = small_config(search_id="cache-a", generations=1, population=3, islands=1)
    await run_search(nc, js, config)
    await run_search(nc, js, config.model_copy(update={"search_id": "cache-b"}))
    first = project(await LineageStream(js, "autoscaler").read("cache-a"))
    second = project(await LineageStream(js, "autoscaler").read("cache-b"))
    total = len(Dataset.from_jsonl(DATASET).requests)
    root_a, root_b = first.evaluations["root"], second.evaluations["root"]
    assert (root_a.figures["requests_cached"], root_a.figures["requests_decided"]) == (0, total)
    assert (root_b.figures["requests_cached"], root_b.figures["requests_decided"]) == (total, 0)
    assert root_b.fitness == root_a.fitness
    assert root_b.figures["failures"] == root_a.figures["failures"]

    # The cascade: pruned at the minibatch (16 requests), then evaluated in full.
    source = EXAMPLE.read_text().replace(
        "Field(default=1, ge=1, le=16)", "Field(default=2, ge=1, le=16)"
    )
    digest = "sha256:" + hashlib.sha256(source.encode()).hexdigest()
    candidate, baseline = tmp_path / "candidate.py", tmp_path / "baseline.py"
    candidate.write_text(source)
    baseline.write_text(EXAMPLE.read_text())
    cache = EvaluationCache(js)
    dataset = Dataset.from_jsonl(DATASET)
    judge = "sha256:" + hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()
    keys = chain_keys(digest, judge, dataset)
    marks = checkpoints(total, SMOKE, 16)
    pool = EvaluationPool(1, timeout=600, memory_mb=512)

    async def store(record: dict[str, Any]) -> None:
        checkpoint = Checkpoint(
            start=record["start"], end=record["checkpoint"], records=record["records"],
            state=record["state"],
        )  # fmt: skip
        await cache.store(keys[checkpoint.end - 1], checkpoint)

    async def evaluate(floor: float | None, resume: list[Checkpoint]) -> dict[str, Any]:
        resume_file = None
        if resume:
            resume_file = tmp_path / "resume.json"
            resume_file.write_text("[" + ",".join(c.model_dump_json() for c in resume) + "]")
        job = EvaluationJob(
            candidate=candidate, baseline=baseline, dataset=DATASET, expected_name="autoscaler",
            minibatch=16, minibatch_floor=floor, checkpoints=marks, resume=resume_file,
        )  # fmt: skip
        return await pool.run(job, store)

    pruned = await evaluate(1e9, await cache.restore(keys, marks))
    assert pruned["outcome"] == "pruned"
    assert pruned["requests_decided"] == 16
    restored = await cache.restore(keys, marks)
    assert [c.end for c in restored] == [3, 16]
    full = await evaluate(None, restored)
    assert full["outcome"] == "ok"
    assert (full["requests_cached"], full["requests_decided"]) == (16, total - 16)
    fresh = await pool.run(
        EvaluationJob(
            candidate=candidate,
            baseline=baseline,
            dataset=DATASET,
            expected_name="autoscaler",
            minibatch=16,
        )
    )
    assert full["fitness"] == fresh["fitness"]
    assert full["failures"] == fresh["failures"]
