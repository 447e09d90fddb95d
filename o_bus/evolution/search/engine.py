"""The search loop: propose children, evaluate them offline, select, record everything.

Generation by generation, each island draws parents by tournament from its population and
applies an operator; every child is recorded (``child_created``), validated and evaluated in
the sandboxed pool (``evaluated``, or ``child_discarded`` with the reason), and the survivors
(elites first, then the best children) become the island's next population
(``generation_closed``); every few generations the best of each island migrate to the next.

Everything random is drawn from a generator seeded by (seed, generation, island, slot), and
every decision reads only recorded fitness, so the same seed gives the same search; and
because the state is the fold of the lineage, a search killed at any point resumes where the
lineage says it was, re-running only the evaluations that had not been recorded.
"""

from __future__ import annotations

import asyncio
import difflib
import hashlib
import logging
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nats.aio.client import Client
from nats.js import JetStreamContext

from o_bus.agent.catalogue import find_definition, import_file
from o_bus.agent.improvement import HandOff
from o_bus.errors import ConfigurationError, OBusError
from o_bus.evolution.adversarial.cases import RegressionCase
from o_bus.evolution.adversarial.regression_log import regression_requests
from o_bus.evolution.feedback.log import FeedbackLog
from o_bus.evolution.search.breeding import ROOT, Brood, breed
from o_bus.evolution.search.config import SearchConfig, SearchResult
from o_bus.evolution.search.descriptors import declared, descriptor_values, specs
from o_bus.evolution.search.evaluate.cache import (
    Checkpoint,
    EvaluationCache,
    chain_keys,
    checkpoints,
)
from o_bus.evolution.search.evaluate.dataset import Dataset
from o_bus.evolution.search.evaluate.pool import EvaluationPool, OnCheckpoint
from o_bus.evolution.search.evaluate.worker import SMOKE, EvaluationJob
from o_bus.evolution.search.genome import GenomeSpace, read_genome
from o_bus.evolution.search.handoff import deploy_best, hand_off
from o_bus.evolution.search.lineage.events import (
    ChildCreated,
    ChildDiscarded,
    Evaluated,
    GenerationClosed,
    LineageEvent,
    Migrated,
    SearchFinished,
    SearchStarted,
)
from o_bus.evolution.search.lineage.projection import SearchProjection
from o_bus.evolution.search.lineage.stream import LineageStream
from o_bus.evolution.search.operators.base import Operator, Proposal
from o_bus.evolution.search.operators.llm import LlmPatch
from o_bus.evolution.search.operators.registry import build_operators
from o_bus.evolution.search.population.islands import apply_migrations, migrations
from o_bus.evolution.search.population.selection import survivors
from o_bus.evolution.search.window import wal_window

__all__ = ["Progress", "run_search"]

log = logging.getLogger(__name__)

Progress = Callable[[SearchProjection, int], None]  # (state, planned evaluations)
STALL_GENERATIONS = 5  # generations in a row without a newly evaluated child end a search


async def user_feedback(js: JetStreamContext, agent: str, keep: int = 20) -> tuple[str, ...]:
    """The feedback with text users gave the agent, lowest scores first (the ``keep`` most
    telling), as lines for the LLM operator's prompt."""
    texts = [fb for fb in await FeedbackLog(js).read(agent) if fb.text]
    chosen = sorted(texts, key=lambda fb: (fb.score, -(fb.seq or 0)))[:keep]
    return tuple(f"{fb.score:+.2g} on {fb.request_id}: {fb.text}" for fb in chosen)


def _digest(source: str) -> str:
    return "sha256:" + hashlib.sha256(source.encode()).hexdigest()


def _diff(parent: ChildCreated | None, source: str, child: str) -> str:
    if parent is None:
        return ""
    lines = difflib.unified_diff(
        parent.source.splitlines(keepends=True),
        source.splitlines(keepends=True),
        parent.child,
        child,
        n=1,
    )
    return "".join(lines)


class _Search:
    def __init__(
        self,
        config: SearchConfig,
        lineage: LineageStream,
        folder: Path,
        progress: Progress | None,
    ) -> None:
        self.config = config
        self.lineage = lineage
        self.folder = folder
        self.progress = progress
        self.state = SearchProjection()
        self.search_id = config.search_id or uuid.uuid4().hex[:12]
        self.dataset = Dataset(requests=())
        self.dataset_file = folder / "dataset.jsonl"
        self.regressions: list[RegressionCase] = []
        self.regressions_file = folder / "regressions.jsonl"
        self.baseline_file = folder / config.filename
        self.baseline_file.write_text(config.source)
        module = import_file(self.baseline_file, f"o_bus_search_root_{self.search_id}")
        self.root = find_definition(module, config.attr, config.filename)
        self.space = GenomeSpace(self.root.genome_type) if self.root.genome_type else None
        self.descriptor_names = config.descriptors or declared(config.source)
        self.specs = specs(self.descriptor_names, self.space, config.bins)
        self.operators: list[Operator] = build_operators(config, self.space)
        self.pool = EvaluationPool(
            config.workers,
            timeout=config.timeout,
            memory_mb=config.memory_mb,
            cpu_seconds=config.cpu_seconds,
            workdir=folder,
            spare_cores=config.spare_cores,
        )
        self.cache = EvaluationCache(lineage.js) if config.cache else None
        self.resumed = False
        self.started = time.monotonic()

    async def load_dataset(self, nc: Client, js: JetStreamContext) -> None:
        if self.config.dataset is not None:
            self.dataset = Dataset.from_jsonl(self.config.dataset)
        elif self.config.window is not None:
            self.dataset = await wal_window(
                nc, js, self.config.agent, self.config.window, self.root
            )
        else:
            raise ConfigurationError("a search needs a dataset file or a WAL window")
        self.dataset.write_jsonl(self.dataset_file)
        if any(isinstance(op, LlmPatch) for op in self.operators):
            said = await user_feedback(js, self.config.agent)
            for op in self.operators:
                if isinstance(op, LlmPatch):
                    op.user_feedback = said
        cases = await regression_requests(js, self.config.agent)
        self.regressions = sorted((c for c in cases if c.steps), key=lambda c: c.case_id)
        self.regressions_file.write_text(
            "".join(case.model_dump_json() + "\n" for case in self.regressions)
        )

    @property
    def identity(self) -> str:
        """What every child is evaluated on: the dataset, and the regression set if any."""
        if not self.regressions:
            return self.dataset.identity
        content = " ".join([self.dataset.identity, *(c.case_id for c in self.regressions)])
        return "sha256:" + hashlib.sha256(content.encode()).hexdigest()

    # -- recording ---------------------------------------------------------------------------

    async def record(self, event: LineageEvent) -> None:
        await self.lineage.append(event)
        self.state.apply(event)

    @property
    def evaluations(self) -> int:
        return sum(1 for e in self.state.evaluations.values() if e.cached_from is None)

    def _notify(self, planned: int) -> None:
        if self.progress is not None:
            self.progress(self.state, planned)

    # -- the loop ----------------------------------------------------------------------------

    async def run(self) -> SearchResult:
        for event in await self.lineage.read(self.search_id):
            self.state.apply(event)
        self.resumed = self.state.started is not None
        if not self.resumed:
            await self.record(
                SearchStarted(
                    search=self.search_id,
                    agent=self.config.agent,
                    config=self.config.model_dump(mode="json", exclude={"source"}),
                    dataset=self.identity,
                    dataset_origin=self.dataset.origin,
                    descriptors=[
                        {"name": s.name, "low": s.low, "high": s.high, "bins": s.bins, "log": s.log}
                        for s in self.specs
                    ],
                    root=ROOT,
                )
            )
        elif self.state.started and self.state.started.dataset != self.identity:
            raise ConfigurationError(
                f"search {self.search_id} was recorded on dataset {self.state.started.dataset}; "
                f"this dataset is {self.identity}"
            )
        genome = read_genome(self.config.source)
        if genome is None and self.space is not None:
            genome = self.space.defaults()
        root = Proposal(self.config.source, genome, "the starting version")
        await self._generation(0, {0: [(ROOT, [], "root", root)]})
        if self.state.closed_generation < 0:
            await self.record(
                GenerationClosed(
                    search=self.search_id, generation=0, populations=[[ROOT]] * self.config.islands
                )
            )
        for generation in range(
            max(1, self.state.closed_generation + 1), self.config.generations + 1
        ):
            remaining = self._budget_left()
            if self._spent() or self.state.fitness.get(ROOT) is None:
                break
            children = await breed(
                self.state, self.config, self.operators, generation, remaining, self.record
            )
            await self._generation(generation, children)
            await self._close(generation, children)
        return await self._finish()

    def _stalled(self) -> int:
        """Closed generations in a row, latest first, that evaluated no new code (every child
        refused or a copy of code already evaluated): read from the lineage, so a resumed
        search stops where the uninterrupted one would."""
        fresh = {
            self.state.children[c].generation
            for c, e in self.state.evaluations.items()
            if e.cached_from is None and c in self.state.children
        }
        count = 0
        for generation in range(self.state.closed_generation, 0, -1):
            if generation in fresh:
                break
            count += 1
        return count

    def _spent(self) -> str | None:
        """Which budget is spent, if one is (a stalled search has nothing left to spend on)."""
        if self._stalled() >= STALL_GENERATIONS:
            return f"stalled: {STALL_GENERATIONS} generations without a new child to evaluate"
        if self._budget_left() <= 0:
            return f"evaluation budget spent ({self.evaluations})"
        if self.config.max_cpu_seconds is not None:
            cpu = sum(
                float(e.figures.get("cpu_s") or 0.0)
                for e in self.state.evaluations.values()
                if e.cached_from is None
            )
            if cpu >= self.config.max_cpu_seconds:
                return f"CPU budget spent ({cpu:.1f} s of evaluation)"
        if self.config.max_seconds is not None:
            elapsed = time.monotonic() - self.started
            if elapsed >= self.config.max_seconds:
                return f"wall-time budget spent ({elapsed:.0f} s)"
        return None

    def _budget_left(self) -> int:
        if self.config.max_evals is None:
            return 1 << 30
        return self.config.max_evals - self.evaluations

    async def _generation(
        self,
        generation: int,
        children: Brood,
    ) -> None:
        """Record and evaluate the children not yet evaluated; identical code is evaluated once."""
        pending: list[tuple[str, Proposal]] = []
        for island, made in children.items():
            for child, parents, operator, proposal in made:
                if proposal is None:
                    continue
                if child not in self.state.children:
                    first = self.state.children.get(parents[0]) if parents else None
                    diff = _diff(first, proposal.source, child)
                    await self.record(
                        ChildCreated(
                            search=self.search_id,
                            child=child,
                            parents=parents,
                            operator=operator,
                            detail=proposal.detail,
                            island=island,
                            generation=generation,
                            genome=proposal.genome,
                            digest=_digest(proposal.source),
                            source=proposal.source,
                            diff=diff,
                        )
                    )
                if child not in self.state.evaluations and child not in self.state.discarded:
                    pending.append((child, proposal))
        by_digest = {
            self.state.children[c].digest: c
            for c, e in self.state.evaluations.items()
            if e.cached_from is None
        }
        unique: dict[str, tuple[str, Proposal]] = {}
        copies: list[tuple[str, str]] = []
        for child, proposal in pending:
            digest = self.state.children[child].digest
            if digest in by_digest:
                copies.append((child, by_digest[digest]))
            elif digest in unique:
                copies.append((child, unique[digest][0]))
            else:
                unique[digest] = (child, proposal)
        self._notify(len(unique))
        await asyncio.gather(*(self._evaluate(c, p) for c, p in unique.values()))
        for child, original in sorted(copies):
            done = self.state.evaluations.get(original)
            if done is None:
                why = self.state.discarded.get(original, "not evaluated")
                await self.record(
                    ChildDiscarded(
                        search=self.search_id, child=child, reason=f"same code as {original}: {why}"
                    )
                )
                continue
            await self.record(done.model_copy(update={"child": child, "cached_from": original}))

    async def _evaluate(self, child: str, proposal: Proposal) -> None:
        floor = None
        root = self.state.evaluations.get(ROOT)
        if root is not None and root.figures.get("minibatch_fitness") is not None:
            floor = float(root.figures["minibatch_fitness"]) * self.config.minibatch_margin
        source_file = self.folder / f"{child}.py"
        source_file.write_text(proposal.source)
        resume_file, on_checkpoint = await self._cached(child, _digest(proposal.source))
        job = EvaluationJob(
            candidate=source_file,
            baseline=self.baseline_file,
            dataset=self.dataset_file,
            expected_name=self.root.name,
            attr=self.config.attr,
            minibatch=self.config.minibatch,
            minibatch_floor=floor if child != ROOT else None,
            regressions=self.regressions_file if self.regressions else None,
            checkpoints=checkpoints(len(self.dataset.requests), SMOKE, self.config.minibatch),
            resume=resume_file,
        )
        result = await self.pool.run(job, on_checkpoint)
        outcome = result.pop("outcome")
        reason = result.pop("reason", None)
        if outcome == "invalid":
            await self.record(
                ChildDiscarded(search=self.search_id, child=child, reason=reason or "invalid")
            )
            self._notify(0)
            return
        fitness = result.get("fitness") if outcome == "ok" else None
        descriptors = (
            descriptor_values(
                list(self.descriptor_names), proposal.source, proposal.genome, result, self.space
            )
            if outcome == "ok"
            else {}
        )
        await self.record(
            Evaluated(
                search=self.search_id,
                child=child,
                outcome=outcome,
                fitness=fitness,
                descriptors=descriptors,
                figures=result,
                reason=reason,
                dataset=self.identity,
            )
        )
        self._notify(0)

    async def _cached(self, child: str, digest: str) -> tuple[Path | None, OnCheckpoint | None]:
        """The checkpoints of this code on these requests already in the cache (written for
        the worker to start after), and where the new ones go."""
        if self.cache is None:
            return None, None
        cache = self.cache
        keys = chain_keys(digest, _digest(self.config.source), self.dataset)
        marks = checkpoints(len(keys), SMOKE, self.config.minibatch)
        restored = await cache.restore(keys, marks)
        resume_file = None
        if restored:
            resume_file = self.folder / f"{child}.resume.json"
            resume_file.write_text("[" + ",".join(c.model_dump_json() for c in restored) + "]")

        async def store(record: dict[str, Any]) -> None:
            done = int(record["checkpoint"])
            checkpoint = Checkpoint(
                start=int(record["start"]), end=done, records=record["records"],
                state=str(record["state"]),
            )  # fmt: skip
            await cache.store(keys[done - 1], checkpoint)

        return resume_file, store

    async def _close(
        self,
        generation: int,
        children: Brood,
    ) -> None:
        fitness = self.state.fitness
        populations = [
            survivors(
                population,
                [c for c, _, _, _ in children.get(island, [])],
                fitness,
                self.config.population,
                self.config.elites,
            )
            for island, population in enumerate(self.state.populations)
        ]
        if generation % self.config.migration_interval == 0:
            moves = migrations(populations, fitness, self.config.migrants)
            for child, source, target, replaced in moves:
                await self.record(
                    Migrated(
                        search=self.search_id,
                        generation=generation,
                        child=child,
                        from_island=source,
                        to_island=target,
                        replaced=replaced,
                    )
                )
            populations = apply_migrations(populations, moves)
        await self.record(
            GenerationClosed(search=self.search_id, generation=generation, populations=populations)
        )

    async def _finish(self) -> SearchResult:
        best = self.state.best()
        root_fitness = self.state.fitness.get(ROOT)
        if self.state.finished is None:
            reason = self._spent() or "generations done"
            if root_fitness is None:
                reason = "the starting version could not be evaluated"
            if best is not None and best[0] != ROOT and self.config.deploy_best:
                try:
                    await self.record(
                        await deploy_best(
                            self.lineage.js,
                            self.config,
                            self.search_id,
                            self.state.children[best[0]],
                            best[1],
                        )
                    )
                except OBusError as err:
                    reason += f"; the best version was not deployed: {err}"
            deployed = self.state.deployed
            if self.config.hand_off and deployed is not None and self.state.handed_off is None:
                await self.record(
                    await hand_off(
                        self.lineage.js,
                        self.config.agent,
                        self.search_id,
                        deployed,
                        root_fitness,
                        self.root.handoff or HandOff(),
                        self.config.by,
                    )
                )
            await self.record(
                SearchFinished(
                    search=self.search_id,
                    reason=reason,
                    best=best[0] if best else None,
                    best_fitness=best[1] if best else None,
                    evaluations=self.evaluations,
                )
            )
        deployed = self.state.deployed
        archive = self.state.archive
        handed = self.state.handed_off
        return SearchResult(
            search_id=self.search_id,
            agent=self.config.agent,
            baseline_fitness=root_fitness,
            best_fitness=best[1] if best else None,
            best_child=best[0] if best else None,
            best_version=deployed.code_version if deployed else None,
            evaluations=self.evaluations,
            discarded=len(self.state.discarded),
            generations=max(0, self.state.closed_generation),
            archive_cells=len(archive.cells) if archive else 0,
            resumed=self.resumed,
            handed_off=handed is not None and handed.handed,
            handoff_reason=handed.reason if handed else None,
            stop_reason=self.state.finished.reason if self.state.finished else None,
        )


async def run_search(
    nc: Client,
    js: JetStreamContext,
    config: SearchConfig,
    *,
    progress: Progress | None = None,
) -> SearchResult:
    """Run (or resume, when ``config.search_id`` is recorded) a search; see the module doc.

    The dataset is ``config.dataset`` (JSONL) or the last ``config.window`` requests of the
    agent's WAL. With ``config.deploy_best`` the best child, if it beats nothing else than
    itself, is validated by ``o-bus deploy``'s validation and stored as a code version.
    """
    lineage = LineageStream(js, config.agent)
    await lineage.ensure()
    with tempfile.TemporaryDirectory(prefix="o-bus-search-") as folder:
        search = _Search(config, lineage, Path(folder), progress)
        await search.load_dataset(nc, js)
        return await search.run()
