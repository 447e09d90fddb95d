"""`o-bus agent add FILE.py[:ATTR]` and `o-bus agent remove NAME`: change the agents of a
running platform; its supervisor starts or stops their processes, with no restart."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from o_bus.cli.common import cli_connect, emit
from o_bus.supervision.records import SupervisionPolicy

__all__ = ["add_parsers", "cmd_agent", "cmd_place"]


def add_parsers(
    sub: Any, common: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]
) -> None:
    agent = common(sub.add_parser("agent", help="add or remove an agent of a running platform"))
    agent.add_argument("action", choices=["add", "remove"])
    agent.add_argument("target", help="add: FILE.py[:ATTRIBUTE]; remove: the agent's name")
    agent.add_argument("--name", help="add: the agent's name (default: its definition's)")
    agent.add_argument("--standby", action="store_true", help="add: with a warm standby")
    agent.add_argument("--timeout", type=float, default=20.0, help="add: seconds to import")

    place = common(sub.add_parser("place", help="run an agent on a host (o-bus run host)"))
    place.add_argument("agent")
    place.add_argument("host", help="the host's name, or 'default' for `o-bus up`'s supervisors")
    place.add_argument(
        "--standby-on",
        action="append",
        default=[],
        metavar="HOST",
        help="run a warm standby on this other host (repeatable): it takes over if the host dies",
    )


async def cmd_agent(args: argparse.Namespace) -> int:
    # Imported here: building the parser (every `o-bus run agent`) must not load them.
    from o_bus.evolution.deploy import default_deployer
    from o_bus.platform.agents import add_agent, remove_agent

    async with cli_connect(args, "o-bus-agent-cli") as (_, js):
        if args.action == "remove":
            await remove_agent(js, args.target)
            emit({"removed": args.target}, args.json)
            return 0
        policy = SupervisionPolicy(standby=True) if args.standby else None
        record = await add_agent(
            js,
            args.target,
            by=default_deployer(),
            name=args.name,
            policy=policy,
            timeout=args.timeout,
        )
        emit(
            {"added": record.name, "definition": record.definition, "code": record.code}, args.json
        )
    return 0


async def cmd_place(args: argparse.Namespace) -> int:
    from o_bus.evolution.deploy import default_deployer
    from o_bus.store.placement import PlacementStore
    from o_bus.store.registry import Registry

    host = None if args.host == "default" else args.host
    async with cli_connect(args, "o-bus-place") as (_, js):
        await Registry(js).get(args.agent)  # NotFoundError for an unknown agent
        await PlacementStore(js).place(
            args.agent, host, standby_on=tuple(args.standby_on), by=default_deployer()
        )
    shown: dict[str, Any] = {"agent": args.agent, "host": args.host}
    if args.standby_on:
        shown["standby_on"] = args.standby_on
    emit(shown, args.json)
    return 0
