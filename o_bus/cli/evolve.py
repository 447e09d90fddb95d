"""`o-bus route` and `o-bus evolve`: see and change which code serves an agent."""

from __future__ import annotations

import argparse
import getpass
import socket
import sys
from collections.abc import Callable
from typing import Any

import nats.errors
from pydantic_core import from_json

from o_bus.cli.common import cli_connect, emit
from o_bus.cli.evolve_search import SEARCH_ACTIONS, add_search_arguments, cmd_search_action
from o_bus.errors import ErrorCode, InvalidRequestError, NotFoundError
from o_bus.evolution.code_store import CodeStore, default_cache_dir
from o_bus.evolution.evolution_store import EvolutionStore
from o_bus.evolution.plan import Evolution, EvolutionPlan
from o_bus.evolution.routes import CanaryRoute, Route, RouteStore, ShadowRoute
from o_bus.evolution.sandbox import MiB, SandboxLimits
from o_bus.platform.operator_actions import abort_evolution
from o_bus.store import layout
from o_bus.store.event_records import utc_now
from o_bus.store.registry import Registry

__all__ = ["add_parsers", "cmd_evolve", "cmd_route", "render_status"]


def operator() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


_PLAN_DEFAULTS = EvolutionPlan()
# The gates of `evolve start`: option, EvolutionPlan field (its default and description are
# the option's, so `--help` shows what the arbiter applies), type.
_GATES: tuple[tuple[str, str, type], ...] = (
    ("--min-requests", "min_requests", int),
    ("--min-canary-requests", "min_canary_requests", int),
    ("--min-stage-seconds", "min_stage_seconds", float),
    ("--max-error-rate", "max_error_rate", float),
    ("--alpha", "alpha", float),
    ("--max-diff-rate", "max_diff_rate", float),
    ("--max-p99-ratio", "max_p99_ratio", float),
    ("--min-fitness-gain", "min_fitness_gain", float),
    ("--max-fitness-requests", "max_fitness_requests", int),
    ("--bake-seconds", "bake_seconds", float),
)


def _gate(field_name: str) -> dict[str, Any]:
    field = EvolutionPlan.model_fields[field_name]
    return {"default": field.default, "help": field.description or field_name.replace("_", " ")}


def add_parsers(
    sub: Any, common: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]
) -> None:
    route = common(sub.add_parser("route", help="show or change an agent's code routes"))
    route.add_argument("agent")
    route.add_argument("--live", help="code version to serve live ('registered': the original)")
    route.add_argument("--shadow", action="append", default=[], help="add a shadow version")
    route.add_argument("--remove-shadow", action="append", default=[], help="remove a shadow")
    route.add_argument("--no-shadows", action="store_true", help="remove every shadow")
    route.add_argument("--ignore", action="append", default=[], help="path never compared")
    route.add_argument("--sample", type=float, default=1.0, help="added shadows compare this share")
    route.add_argument("--canary", help="code version deciding --weight percent of requests")
    route.add_argument("--weight", type=int, default=10, help="canary share in percent")
    route.add_argument("--sticky", help="request header that pins a client to one side")
    route.add_argument("--no-canary", action="store_true")
    route.add_argument("--reason", default="", help="why (recorded with the change)")

    evolve = common(sub.add_parser("evolve", help="shadow, canary and promote a code version"))
    evolve.add_argument("action", choices=["start", "status", "abort", *SEARCH_ACTIONS])
    evolve.add_argument("agent")
    evolve.add_argument("version", nargs="?", help="`start`: the code version")
    evolve.add_argument(
        "--canary-steps",
        default=",".join(str(w) for w in _PLAN_DEFAULTS.canary_steps),
        help="canary weights in percent, in order; '' skips the canary",
    )
    for option, field_name, kind in _GATES:
        evolve.add_argument(option, type=kind, **_gate(field_name))
    evolve.add_argument("--ignore", action="append", default=[], help="path never compared")
    evolve.add_argument(
        "--shadow-sample", type=float, default=1.0, help="share of requests compared (0-1]"
    )
    evolve.add_argument(
        "--shadow-cpu",
        type=float,
        default=0.0,
        help="hard cap: share of a core the shadow may use (default 0: no cap; the shadow "
        "runs under SCHED_IDLE and uses only cores live leaves idle)",
    )
    evolve.add_argument(
        "--memory-mb",
        type=int,
        default=_PLAN_DEFAULTS.limits.memory_bytes // MiB,
        help="candidate memory limit (MiB)",
    )
    evolve.add_argument(
        "--timeout",
        type=float,
        default=_PLAN_DEFAULTS.limits.wall_clock_seconds,
        help="hard wall-clock limit per candidate call (s)",
    )
    evolve.add_argument("--reason", default="", help="`abort`: why")
    add_search_arguments(evolve)


async def _resolve(code: CodeStore, agent: str, ref: str) -> str | None:
    if ref == "registered":
        return None
    return (await code.get(agent, ref)).digest


async def cmd_route(args: argparse.Namespace) -> int:
    async with cli_connect(args, "o-bus-cli") as (_, js):
        await Registry(js).get(args.agent)  # a clear error for an agent that does not exist
        routes = RouteStore(js)
        changing = args.live or args.shadow or args.remove_shadow or args.no_shadows
        if not (changing or args.canary or args.no_canary):
            route, revision = await routes.get(args.agent)
            emit({**route.model_dump(mode="json"), "revision": revision}, args.json)
            return 0
        code = CodeStore(js, default_cache_dir())
        live = await _resolve(code, args.agent, args.live) if args.live else None
        added = [await _resolve(code, args.agent, ref) for ref in args.shadow]
        removed = {await _resolve(code, args.agent, ref) for ref in args.remove_shadow}
        if args.canary == "registered":
            raise InvalidRequestError(
                ErrorCode.MALFORMED_REQUEST, "--canary takes a deployed code version"
            )
        canary = await _resolve(code, args.agent, args.canary) if args.canary else None
        if not 0 <= args.weight <= 100:
            raise InvalidRequestError(ErrorCode.MALFORMED_REQUEST, "--weight must be 0-100")

        def change(route: Route) -> Route:
            update: dict[str, Any] = {}
            if args.live:
                update["live"], update["previous_live"] = live, route.live
            shadows = () if args.no_shadows else route.shadows
            shadows = tuple(s for s in shadows if s.version not in removed)
            known = {s.version for s in shadows}
            ignore = tuple(args.ignore)
            shadows += tuple(
                ShadowRoute(version=v, ignore=ignore, sample=args.sample)
                for v in added
                if v and v not in known
            )
            update["shadows"] = shadows
            if args.no_canary:
                update["canary"] = None
            elif canary is not None:
                update["canary"] = CanaryRoute(
                    version=canary, weight=args.weight, sticky=args.sticky
                )
            return route.model_copy(update=update)

        after = await routes.update(args.agent, change, by=operator(), reason=args.reason)
        emit(after.model_dump(mode="json"), args.json)
    return 0


async def cmd_evolve(args: argparse.Namespace) -> int:
    if args.action in SEARCH_ACTIONS:
        return await cmd_search_action(args)
    async with cli_connect(args, "o-bus-cli") as (_, js):
        store = EvolutionStore(js)
        if args.action == "status":
            evolution, _ = await store.get(args.agent)
            status = await _status(js, evolution)
            if args.json:
                emit(status, True)
            else:
                sys.stdout.write(render_status(status))
            return 0
        if args.action == "abort":
            emit(await abort_evolution(js, args.agent, operator(), args.reason), args.json)
            return 0
        if not args.version:
            raise InvalidRequestError(ErrorCode.MALFORMED_REQUEST, "`evolve start` needs VERSION")
        version = await CodeStore(js, default_cache_dir()).get(args.agent, args.version)
        evolution = Evolution(
            agent=args.agent,
            version=version.digest,
            code_version=version.code_version,
            plan=_plan(args),
            requested_by=operator(),
            requested_at=utc_now(),
        )
        await store.request(evolution)
        emit({"agent": args.agent, "version": version.digest, "status": "requested"}, args.json)
    return 0


def _plan(args: argparse.Namespace) -> EvolutionPlan:
    steps = tuple(int(s) for s in args.canary_steps.split(",") if s.strip())
    return EvolutionPlan(
        canary_steps=steps,
        min_requests=args.min_requests,
        min_canary_requests=args.min_canary_requests,
        min_stage_seconds=args.min_stage_seconds,
        max_error_rate=args.max_error_rate,
        alpha=args.alpha,
        max_diff_rate=args.max_diff_rate,
        max_p99_ratio=args.max_p99_ratio,
        min_fitness_gain=args.min_fitness_gain,
        max_fitness_requests=args.max_fitness_requests,
        bake_seconds=args.bake_seconds,
        ignore=tuple(args.ignore),
        shadow_sample=args.shadow_sample,
        shadow_cpu=args.shadow_cpu or None,
        limits=SandboxLimits(
            memory_bytes=args.memory_mb * MiB,
            wall_clock_seconds=args.timeout,
            idle_scheduling=True,
        ),
    )


async def _status(js: Any, evolution: Evolution) -> dict[str, Any]:
    status = evolution.model_dump(mode="json")
    status["latest_diff"] = await latest_diff(js, evolution.agent, evolution.version)
    return status


DIFF_LOOKBACK = 1000
"""How many diff records `evolve status` reads back, newest first, to find the current
candidate's latest one (diffs of an earlier candidate or of another shadow may come after)."""


async def latest_diff(js: Any, agent: str, version: str) -> dict[str, Any] | None:
    """The newest diff of the candidate ``version`` of ``agent``, or None if there is none."""
    subject = layout.diff_subject(agent)
    try:
        last = await js.get_msg(layout.DIFF_STREAM, subject=subject, direct=True)
    except (nats.errors.Error, NotFoundError):
        return None
    msg, seq = last, last.seq or 0
    for _ in range(DIFF_LOOKBACK):
        if seq < 1:
            return None
        if seq != last.seq:
            try:
                msg = await js.get_msg(layout.DIFF_STREAM, seq=seq, direct=True)
            except nats.errors.Error:  # deleted or aged out: older ones may remain
                seq -= 1
                continue
        seq -= 1
        if msg.subject != subject:
            continue
        try:
            diff = from_json(msg.data)
        except ValueError:
            continue
        if isinstance(diff, dict) and diff.get("version") == version:
            return diff
    return None


_FIGURES = (
    ("compared", "compared"),
    ("differing", "differing"),
    ("diff_rate", "diff rate"),
    ("coverage", "shadow coverage"),
    ("shed", "shed"),
    ("candidate_failures", "candidate failures"),
    ("live_failures", "live failures"),
    ("candidate_p99_ms", "candidate p99 ms"),
    ("live_p99_ms", "live p99 ms"),
    ("candidate_fitness", "candidate fitness"),
    ("live_fitness", "live fitness"),
    ("canary_decided", "canary decided"),
    ("canary_failures", "canary failures"),
    ("requests", "live requests"),
    ("errors", "live errors"),
    ("rejections", "live rejections"),
    ("error_rate", "live error rate"),
    ("error_rate_before", "error rate before"),
)


def _figure(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def render_status(status: dict[str, Any]) -> str:
    """``o-bus evolve status`` for people: stage, figures, decisions, the latest diff."""
    lines = [
        f"{status['agent']}: {status['version'][:19]} ({status['code_version']})  "
        f"status {status['status']}, stage {status['stage']}",
        f"requested by {status['requested_by']} at {status['requested_at']}",
    ]
    figures = status.get("metrics") or {}
    shown = [f"{label} {_figure(figures[key])}" for key, label in _FIGURES if key in figures]
    if shown:
        lines.append("figures: " + ", ".join(shown))
    if status.get("abort_requested"):
        lines.append(f"abort requested: {status['abort_requested']}")
    lines.append("decisions:")
    for decision in status["decisions"]:
        lines.append(
            f"  {decision['at'][11:19]}  {decision['stage']:<11} {decision['action']:<8} "
            f"{decision['reason']}"
        )
    diff = status.get("latest_diff")
    if diff:
        lines.append(f"latest diff (WAL seq {diff['wal_seq']}, request {diff['request_id']}):")
        for path, sides in diff["fields"].items():
            lines.append(
                f"  {path}: live {sides.get('live')!r} -> candidate {sides.get('candidate')!r}"
            )
    return "\n".join(lines) + "\n"
