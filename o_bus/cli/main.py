"""The `o-bus` command line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from o_bus.cli.common import add_connection_arguments
from o_bus.cli.parsers import show_defaults, subcommands
from o_bus.common.event_loop import run
from o_bus.common.urls import DEFAULT_DATA_DIR
from o_bus.console.options import DEFAULT_CONSOLE_PORT, add_console_arguments
from o_bus.errors import OBusError

__all__ = ["build_parser", "main"]


def _positive(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="o-bus", description="O: event-sourced agents on NATS JetStream."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        add_connection_arguments(p)
        p.add_argument("--json", action="store_true", help="one-line JSON output for scripts")
        return p

    up = sub.add_parser("up", help="run the platform (embedded nats-server unless --nats)")
    up.add_argument("--nats", help="use this NATS server instead of starting one")
    up.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    up.add_argument("--port", type=int, default=4222, help="embedded server port (0: any free)")
    up.add_argument(
        "--sync-interval",
        default=None,
        help="embedded server fsync policy: 'always' or a duration such as '2m'",
    )
    up.add_argument("--replicas", type=int, default=1, help="stream replicas (3 on a cluster)")
    up.add_argument(
        "--splitters",
        type=_at_least_one,
        default=None,
        help="splitter processes in the request queue group (default: 2, more with more cores)",
    )
    up.add_argument("--snapshot-every", type=int, default=1000)
    up.add_argument(
        "--agent", action="append", help="extra agent definition module:attr or file.py"
    )
    up.add_argument(
        "--standby", action="store_true", help="give every agent a warm standby process"
    )
    up.add_argument(
        "--metrics-port",
        default="9464",
        help="health monitor HTTP port, or HOST:PORT (default: 9464; 0: any free)",
    )
    up.add_argument(
        "--metrics-host",
        default=None,
        help="health monitor bind address (default: 127.0.0.1; 0.0.0.0 for other machines; "
        "off loopback, /metrics needs a console token)",
    )
    up.add_argument(
        "--console-host", default="127.0.0.1", help="web console bind address (default: 127.0.0.1)"
    )
    up.add_argument(
        "--console-port",
        type=int,
        default=DEFAULT_CONSOLE_PORT,
        help=f"web console port (default: {DEFAULT_CONSOLE_PORT}; 0: any free)",
    )
    up.add_argument("--no-console", action="store_true", help="do not serve the web console")
    up.add_argument(
        "--otlp",
        metavar="URL",
        help="export traces over OTLP/HTTP to this collector, e.g. http://127.0.0.1:4318 "
        "(default: the standard OTEL_* variables; off when none is set). See docs/tracing.md",
    )

    svc = sub.add_parser("run", help="run one service in this process (used by `up`)")
    svc.add_argument(
        "service",
        choices=[
            "splitter",
            "agents",
            "agent",
            "supervisor",
            "host",
            "health",
            "arbiter",
            "feedback",
            "triggers",
            "console",
        ],
    )
    svc.add_argument("name", nargs="?", help="the agent, for `run agent`")
    svc.add_argument("--nats")
    svc.add_argument("--standby", action="store_true", help="`run agent`: start as warm standby")
    svc.add_argument("--lease-ttl", type=float, default=2.0)
    svc.add_argument("--heartbeat-interval", type=float, default=0.1)
    svc.add_argument("--snapshot-every", type=int, default=1000)
    svc.add_argument(
        "--agent", action="append", help="extra agent definition module:attr or file.py"
    )
    svc.add_argument("--only", action="append", help="run only these agent instances")
    svc.add_argument(
        "--name", dest="host_name", help="`run host`: this host's name (agents placed on it)"
    )
    svc.add_argument(
        "--host", default="127.0.0.1", help="`run health`/`console`: HTTP bind address"
    )
    svc.add_argument("--port", type=int, default=9464, help="`run health`/`console`: HTTP port")
    svc.add_argument(
        "--metrics-auth",
        choices=["auto", "token", "none"],
        default="auto",
        help="`run health`: ask for a console token on /metrics and /health (auto: when not "
        "bound to loopback)",
    )
    svc.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="`run health`/`console`: where the console tokens are (default: $O_BUS_DATA_DIR "
        "or .o-bus)",
    )
    svc.add_argument("--publish-interval", type=float, default=1.0)

    ps = common(sub.add_parser("ps", help="agent processes: pid, role, state, restarts"))
    ps.add_argument("--sample", type=float, default=0.5, help="seconds to listen to heartbeats")

    reset = common(sub.add_parser("reset", help="restart an agent the supervisor gave up on"))
    reset.add_argument("agent")
    reset.add_argument("--reason", default="", help="why (recorded with the action)")

    console = sub.add_parser("console", help="serve the web console for a running platform")
    add_connection_arguments(console)
    add_console_arguments(console)

    send = common(sub.add_parser("send", help="send a command and print the reply"))
    send.add_argument("agent")
    send.add_argument("cmd", metavar="COMMAND")
    send.add_argument("data", nargs="?", help="command data as JSON")
    send.add_argument("--id", help="request id (idempotency key); re-send to get the same reply")
    send.add_argument("--msgpack", action="store_true", help="send and receive msgpack")
    send.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for a reply")
    send.add_argument(
        "--retries",
        type=_positive,
        default=2,
        help="re-sends with the same id after a timeout (applied at most once)",
    )

    qry = common(sub.add_parser("query", help="ask a read-only query (not through the WAL)"))
    qry.add_argument("agent")
    qry.add_argument("name", metavar="QUERY")
    qry.add_argument("params", nargs="?", help="query params as a JSON object")
    qry.add_argument(
        "--min-seq", type=_positive, default=0, help="answer once the agent applied this seq"
    )
    qry.add_argument("--timeout", type=float, default=5.0)

    state = common(sub.add_parser("state", help="current state, or state at a point in history"))
    state.add_argument("agent")
    point = state.add_mutually_exclusive_group()
    point.add_argument("--at", type=_positive, help="state after the agent's N-th event")
    point.add_argument("--at-time", help="state at an ISO-8601 time")
    state.add_argument("--agent-def", dest="agents", action="append", help="extra definitions")

    hist = common(sub.add_parser("history", help="list an agent's events"))
    hist.add_argument("agent")
    hist.add_argument("--from", dest="from_seq", type=_positive)
    hist.add_argument("--to", dest="to_seq", type=_positive)
    hist.add_argument("--follow", action="store_true", help="keep printing new events")
    hist.add_argument(
        "--system",
        action="store_true",
        help="lifecycle and supervision events (start, crash, restart, takeover, escalation)",
    )

    fork = common(sub.add_parser("fork", help="new agent with AGENT's history up to --at"))
    fork.add_argument("agent")
    fork.add_argument("--at", type=_positive, required=True)
    fork.add_argument("--into", required=True)

    snap = common(sub.add_parser("snapshot", help="take a snapshot of an agent now"))
    snap.add_argument("agent")

    common(sub.add_parser("agents", help="list registered agents and their status"))

    dep = common(
        sub.add_parser("deploy", help="validate a source file and store it as a code version")
    )
    dep.add_argument("agent")
    dep.add_argument("path", help="one .py file defining the agent's AgentDefinition")
    dep.add_argument("--note", help="why this version exists")
    dep.add_argument("--attr", help="the definition's attribute, if the file defines several")
    dep.add_argument("--by", help="who deploys (default: user@host)")
    dep.add_argument("--timeout", type=float, default=20.0, help="seconds to import the file")

    versions = common(sub.add_parser("versions", help="list an agent's deployed code versions"))
    versions.add_argument("agent")

    from o_bus.cli.agent import add_parsers as add_agent_parsers
    from o_bus.cli.evolve import add_parsers as add_evolution_parsers

    add_agent_parsers(sub, common)
    from o_bus.cli.operate import add_parsers as add_operate_parsers

    add_operate_parsers(sub, common)
    from o_bus.cli.cluster import add_parser as add_cluster_parser

    add_cluster_parser(sub)

    add_evolution_parsers(sub, common)

    from o_bus.cli.feedback import add_parser as add_feedback_parser

    add_feedback_parser(sub, common)

    bench = sub.add_parser("bench", help="run the benchmark (prints figures beside raw floors)")
    bench.add_argument("rest", nargs=argparse.REMAINDER)

    completion = sub.add_parser("completion", help="print a shell completion script")
    completion.add_argument("shell", choices=["bash", "zsh"])
    return show_defaults(parser)


def _async_command(name: str) -> Callable[[argparse.Namespace], Coroutine[Any, Any, int]]:
    # Imported on use: `o-bus run agent` starts often and should load only what it needs.
    if name == "ps":
        from o_bus.cli.ps import cmd_ps

        return cmd_ps
    if name in ("deploy", "versions"):
        from o_bus.cli import code

        code_command: Callable[[argparse.Namespace], Coroutine[Any, Any, int]] = getattr(
            code, f"cmd_{name}"
        )
        return code_command
    if name in ("route", "evolve"):
        from o_bus.cli import evolve

        return evolve.cmd_route if name == "route" else evolve.cmd_evolve
    if name in ("agent", "place"):
        from o_bus.cli import agent

        return agent.cmd_agent if name == "agent" else agent.cmd_place
    if name == "feedback":
        from o_bus.cli.feedback import cmd_feedback

        return cmd_feedback
    if name in ("pause", "resume", "restart"):
        from o_bus.cli.operate import cmd_operate

        return cmd_operate
    if name == "query":
        from o_bus.cli.query import cmd_query

        return cmd_query
    from o_bus.cli import inspect as inspect_cmds

    command: Callable[[argparse.Namespace], Coroutine[Any, Any, int]] = getattr(
        inspect_cmds, f"cmd_{name}"
    )
    return command


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:  # the benchmark parses its own options
        from o_bus.cli.bench import run_bench

        return run_bench(argv[1:])
    if argv[:1] == ["evolve"] and argv[1:2] in (["red"], ["triggers"]):
        from o_bus.cli.self_improve import main as self_improve_main

        return self_improve_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "completion":
        from o_bus.cli.completion import completion_script
        from o_bus.cli.self_improve import build_parser as self_improve_parser

        extra = [name for name, _ in subcommands(self_improve_parser())]
        sys.stdout.write(completion_script(parser, args.shell, {"evolve": extra}))
        return 0
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        if args.command == "up":
            from o_bus.cli.up import cmd_up

            return cmd_up(args)
        if args.command == "console":
            from o_bus.cli.console import cmd_console

            return run(cmd_console(args))
        if args.command == "cluster":
            from o_bus.cli.cluster import cmd_cluster

            return cmd_cluster(args)
        if args.command == "run":
            from o_bus.cli.services import cmd_run

            return run(cmd_run(args))
        return run(_async_command(args.command)(args))
    except OBusError as err:
        print(f"o-bus {args.command}: {err.message} [{err.code}]", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
