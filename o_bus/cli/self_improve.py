"""`o-bus evolve red AGENT` and `o-bus evolve triggers pause|resume|status AGENT`."""

from __future__ import annotations

import argparse
import getpass
import socket
import sys
import time
from typing import Any

from o_bus.cli.common import add_connection_arguments, cli_connect, emit
from o_bus.cli.parsers import show_defaults
from o_bus.common.event_loop import run
from o_bus.errors import OBusError

__all__ = ["build_parser", "main"]


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="o-bus evolve", description="red/blue and triggers")
    sub = parser.add_subparsers(dest="action", required=True)
    red = sub.add_parser("red", help="evolve requests that make AGENT fail; record what is found")
    red.add_argument("agent")
    red.add_argument(
        "--budget", type=_at_least_one, default=300, help="evaluations (sequences run)"
    )
    red.add_argument("--seed", type=int, default=0)
    red.add_argument("--population", type=_at_least_one, default=16)
    red.add_argument("--max-steps", type=_at_least_one, default=6, help="requests per sequence")
    red.add_argument("--timeout", type=_positive, default=2.0, help="hard limit per sequence (s)")
    red.add_argument("--latency-ms", type=_positive, help="a slower request is a finding")
    red.add_argument(
        "--definition", help="module:attr or file.py:attr to attack offline (no bus, no record)"
    )
    red.add_argument(
        "--reference", help="module:attr or file.py:attr: an answer differing from it is a finding"
    )
    red.add_argument("--agent-def", dest="agents", action="append", help="extra definitions")
    red.add_argument("--no-record", action="store_true", help="do not add to the regression set")
    trig = sub.add_parser("triggers", help="pause, resume or show an agent's self-triggers")
    trig.add_argument("operation", choices=["pause", "resume", "status"])
    trig.add_argument("agent")
    trig.add_argument("--reason", default="", help="why (recorded)")
    for p in (red, trig):
        add_connection_arguments(p)
        p.add_argument("--json", action="store_true", help="one-line JSON output")
    return show_defaults(parser)


def operator() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


async def _red_definition(args: argparse.Namespace, js: Any) -> tuple[Any, str]:
    from o_bus.agent.catalogue import Catalogue
    from o_bus.evolution.live_code import CodeResolver
    from o_bus.evolution.routes import RouteStore
    from o_bus.store.registry import Registry

    record = await Registry(js).get(args.agent)
    registered = Catalogue.discover(args.agents).get(record.definition)
    route, _ = await RouteStore(js).get(args.agent)
    definition = await CodeResolver(js, args.agent, registered).definition(route.live)
    return definition, route.live or "registered"


def _print_red(report: dict[str, Any], recorded: list[int]) -> None:
    out = sys.stdout
    out.write(
        f"red on {report['agent']}: {report['evaluations']} evaluations, "
        f"{report['generations']} generations, seed {report['seed']}: "
        f"{len(report['findings'])} finding(s)\n"
    )
    for finding in report["findings"]:
        failure = finding.get("failure", {})
        out.write(
            f"- {failure.get('kind')} {failure.get('detail')} at step {failure.get('step')} "
            f"(case {finding['case_id'][:12]}): {failure.get('message', '')[:120]}\n"
        )
        for step in finding["steps"]:
            out.write(f"    {step['command']} {step.get('data')}\n")
    if recorded:
        out.write(f"added to the regression set (O_REGRESSION seqs {recorded})\n")


async def cmd_red(args: argparse.Namespace) -> int:
    from o_bus.agent.catalogue import load_definition
    from o_bus.evolution.adversarial.red import RedConfig, red_search
    from o_bus.evolution.adversarial.regression_log import RegressionLog

    config = RedConfig(
        budget=args.budget,
        seed=args.seed,
        population=args.population,
        max_steps=args.max_steps,
        latency_ms=args.latency_ms,
        timeout=args.timeout,
    )
    recorded: list[int] = []
    reference = load_definition(args.reference) if args.reference else None
    if args.definition:
        report = await red_search(
            load_definition(args.definition), config, reference=reference, version="offline"
        )
    else:
        async with cli_connect(args, "o-bus-cli") as (_, js):
            definition, version = await _red_definition(args, js)
            report = await red_search(definition, config, reference=reference, version=version)
            if not args.no_record:
                regressions = RegressionLog(js)
                recorded = [await regressions.add(case) for case in report.findings]
    result = report.as_dict() | {"recorded": recorded}
    if args.json:
        emit(result, True)
    else:
        _print_red(result, recorded)
    return 0


async def cmd_triggers(args: argparse.Namespace) -> int:
    from o_bus.evolution.triggers.records import TriggerLog, TriggerRecord
    from o_bus.store import layout
    from o_bus.store.event_records import utc_now

    layout.validate_agent_name(args.agent)
    async with cli_connect(args, "o-bus-cli") as (_, js):
        trigger_log = TriggerLog(js)
        if args.operation != "status":
            kind = "paused" if args.operation == "pause" else "resumed"
            await trigger_log.append(
                TriggerRecord(
                    kind=kind,
                    agent=args.agent,
                    at=utc_now(),
                    at_epoch=time.time(),
                    reason=args.reason,
                    by=operator(),
                )
            )
        status = await trigger_log.status(args.agent)
    emit(
        {
            "agent": args.agent,
            "paused": status.paused,
            "pause_reason": status.pause_reason,
            "running_search": status.running.search_id if status.running else None,
            "recent": [r.model_dump(mode="json", exclude_none=True) for r in status.history[-10:]],
        },
        args.json,
    )
    return 0


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    command = cmd_red if args.action == "red" else cmd_triggers
    try:
        return run(command(args))
    except OBusError as err:
        print(f"o-bus evolve {args.action}: {err.message} [{err.code}]", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
