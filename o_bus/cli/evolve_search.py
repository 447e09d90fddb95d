"""``o-bus evolve search | lineage | archive``: run the engine, read its lineage."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from o_bus.cli.common import cli_connect, emit
from o_bus.common.priority import idle_priority
from o_bus.common.progress import Progress
from o_bus.errors import ErrorCode, EvolutionNotFoundError, InvalidRequestError
from o_bus.evolution.search.config import OPERATORS, SearchConfig, auto_workers
from o_bus.evolution.search.lineage.projection import SearchProjection, project
from o_bus.evolution.search.lineage.stream import LineageStream
from o_bus.evolution.search.lineage.view import lineage_json
from o_bus.evolution.search.starting import starting_source

__all__ = ["SEARCH_ACTIONS", "add_search_arguments", "cmd_search_action", "render_archive"]

SEARCH_ACTIONS = ("search", "lineage", "archive")


def add_search_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("search (o-bus evolve search AGENT)")
    group.add_argument("--generations", type=int, default=10)
    group.add_argument(
        "--population", type=int, default=8, help="children per island per generation"
    )
    group.add_argument("--islands", type=int, default=2)
    group.add_argument("--workers", default="auto", help="evaluation processes, or 'auto'")
    group.add_argument("--max-evals", type=int, help="evaluation budget")
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--dataset", type=Path, help="JSONL file of requests")
    group.add_argument("--window", type=int, help="or: the last N requests of the agent's WAL")
    group.add_argument(
        "--operators", default="genome,ast,crossover", help="of " + ",".join(OPERATORS)
    )
    group.add_argument("--source", type=Path, help="starting version (default: the live code)")
    group.add_argument("--resume", help="search id to resume (`evolve lineage` shows the latest)")
    group.add_argument(
        "--eval-timeout", type=float, default=120.0, help="kill an evaluation silent this long (s)"
    )
    group.add_argument("--eval-cpu", type=int, default=10, help="CPU-time limit per evaluation (s)")
    group.add_argument(
        "--no-deploy", action="store_true", help="do not store the best as a version"
    )
    group.add_argument(
        "--spare-cores",
        type=float,
        default=1.0,
        help="start an evaluation only while the rest of the machine leaves this many cores "
        "idle (0: whenever a worker is free)",
    )
    group.add_argument(
        "--no-cache",
        action="store_true",
        help="evaluate every child again, even where o_evalcache holds its results",
    )
    group.add_argument("--search", help="`lineage` / `archive`: which search (default: latest)")
    group.add_argument(
        "--red",
        type=int,
        default=0,
        metavar="N",
        help="first run red (N request sequences, same seed) against the starting version and "
        "add its findings to the regression set every child is evaluated on",
    )


def _config(args: argparse.Namespace, source: str, filename: str) -> SearchConfig:
    if (args.dataset is None) == (args.window is None):
        raise InvalidRequestError(
            ErrorCode.MALFORMED_REQUEST, "`evolve search` needs one of --dataset FILE or --window N"
        )
    operators = tuple(o.strip() for o in args.operators.split(",") if o.strip())
    unknown = [o for o in operators if o not in OPERATORS]
    if unknown:
        raise InvalidRequestError(
            ErrorCode.MALFORMED_REQUEST,
            f"unknown operator(s) {unknown}; known: {','.join(OPERATORS)}",
        )
    workers = auto_workers() if args.workers == "auto" else int(args.workers)
    return SearchConfig(
        agent=args.agent,
        source=source,
        filename=filename,
        dataset=args.dataset.resolve() if args.dataset else None,
        window=args.window,
        generations=args.generations,
        population=args.population,
        islands=args.islands,
        workers=workers,
        max_evals=args.max_evals,
        seed=args.seed,
        operators=operators,
        timeout=args.eval_timeout,
        cpu_seconds=args.eval_cpu,
        search_id=args.resume,
        deploy_best=not args.no_deploy,
        cache=not args.no_cache,
        spare_cores=args.spare_cores,
    )


class _SearchProgress:
    """Evaluations done of the budget, the generation and the best fitness so far."""

    def __init__(self, total: int) -> None:
        self.bar = Progress("search", total, unit="evaluations")

    def __call__(self, state: SearchProjection, planned: int) -> None:
        done = sum(1 for e in state.evaluations.values() if e.cached_from is None)
        best = state.best()
        detail = f"generation {state.closed_generation + 1}"
        self.bar(done, f"{detail}, best {best[1]:.4f}" if best else detail)


async def cmd_search_action(args: argparse.Namespace) -> int:
    from o_bus.evolution.search.engine import run_search

    if args.action == "search":
        # The engine (breeding, spawning evaluations, recording) takes only CPU that live
        # traffic leaves idle, like the evaluations it starts.
        idle_priority()
    async with cli_connect(args, "o-bus-evolve") as (nc, js):
        lineage = LineageStream(js, args.agent)
        if args.action == "search":
            source, filename = await starting_source(js, args.agent, args.source)
            config = _config(args, source, filename)
            if args.red:
                await _red_first(js, config, args.red)
            total = config.max_evals or (
                1 + config.generations * config.population * config.islands
            )
            progress = _SearchProgress(total)
            try:
                result = await run_search(nc, js, config, progress=progress)
            finally:
                progress.bar.close()
            emit(result.model_dump(mode="json"), args.json)
            return 0 if result.baseline_fitness is not None else 1
        search = args.search or await lineage.latest_search()
        if search is None:
            raise EvolutionNotFoundError(f"agent {args.agent!r} has no recorded search")
        state = project(await lineage.read(search))
        if args.action == "lineage":
            if args.json:
                emit(lineage_json(search, state), True)
            else:
                sys.stdout.write(render_lineage(search, state))
        else:
            sys.stdout.write(render_archive(search, state))
    return 0


async def _red_first(js: Any, config: SearchConfig, budget: int) -> None:
    """Red against the starting version; its findings join the agent's regression set."""
    from o_bus.agent.catalogue import find_definition, import_file
    from o_bus.evolution.adversarial.red import RedConfig, red_search
    from o_bus.evolution.adversarial.regression_log import RegressionLog

    with tempfile.TemporaryDirectory(prefix="o-bus-red-") as folder:
        path = Path(folder) / config.filename
        path.write_text(config.source)
        module = import_file(path, f"o_bus_agent_red_{config.agent}")
        definition = find_definition(module, config.attr, config.filename)
        report = await red_search(
            definition, RedConfig(budget=budget, seed=config.seed), version="starting version"
        )
    regressions = RegressionLog(js)
    for case in report.findings:
        await regressions.add(case)
    found = ", ".join(f"{c.failure.kind} {c.failure.detail}" for c in report.findings if c.failure)
    sys.stderr.write(
        f"red: {report.evaluations} sequences, {len(report.findings)} finding(s)"
        + (f" ({found}), added to the regression set\n" if found else "\n")
    )


def render_lineage(search: str, state: SearchProjection) -> str:
    """The tree of children, each under its first parent, with fitness or outcome."""
    kids: dict[str, list[str]] = {}
    for child in state.children.values():
        kids.setdefault(child.parents[0] if child.parents else "", []).append(child.child)
    lines = [f"search {search}: {len(state.children)} children, {len(state.fitness)} scored"]

    def walk(node: str, depth: int) -> None:
        created = state.children[node]
        evaluation = state.evaluations.get(node)
        if node in state.discarded and evaluation is None:
            what = f"discarded: {state.discarded[node][:80]}"
        elif evaluation is None:
            what = "pending"
        elif evaluation.fitness is not None:
            what = f"fitness {evaluation.fitness:.4f}"
        else:
            what = f"{evaluation.outcome}: {(evaluation.reason or '')[:80]}"
        lines.append(f"{'  ' * depth}{node} [{created.operator}] {what}  {created.detail[:60]}")
        for kid in kids.get(node, []):
            walk(kid, depth + 1)

    for root in kids.get("", []):
        walk(root, 0)
    best = state.best()
    if best:
        lines.append(f"best: {best[0]} fitness {best[1]:.4f}")
    if state.deployed:
        lines.append(f"deployed as {state.deployed.code_version}")
    return "\n".join(lines) + "\n"


def render_archive(search: str, state: SearchProjection) -> str:
    """The MAP-Elites grid: one line per occupied cell."""
    archive = state.archive
    if archive is None:
        return f"search {search} has no archive\n"
    names = " x ".join(f"{s.name} ({s.bins} bins)" for s in archive.specs)
    lines = [f"search {search}: archive over {names}, {len(archive.cells)} cells occupied"]
    for cell, (child, fitness) in archive.snapshot().items():
        lines.append(f"  [{cell}]  {child:<14} fitness {fitness:.4f}")
    return "\n".join(lines) + "\n"
