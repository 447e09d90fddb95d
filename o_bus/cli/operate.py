"""`o-bus pause | resume | restart AGENT...`: operator actions on running agents, recorded
with who and why (`o-bus history AGENT --system` shows them)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from o_bus.cli.common import cli_connect, emit

__all__ = ["OPERATIONS", "add_parsers", "cmd_operate"]

OPERATIONS = {
    "pause": "stop agents deciding requests (they wait in the WAL) until `resume`",
    "resume": "let paused agents decide the requests that waited, then new ones",
    "restart": "stop agents' processes; the supervisor starts them again",
}


def add_parsers(
    sub: Any, common: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]
) -> None:
    for name, text in OPERATIONS.items():
        parser = common(sub.add_parser(name, help=text))
        parser.add_argument("agents", nargs="+", metavar="AGENT")
        parser.add_argument("--reason", default="", help="why (recorded with the action)")


async def cmd_operate(args: argparse.Namespace) -> int:
    from o_bus.evolution.deploy import default_deployer
    from o_bus.platform import operator_actions

    action = {
        "pause": operator_actions.pause_agent,
        "resume": operator_actions.resume_agent,
        "restart": operator_actions.restart_agent,
    }[args.command]
    failed = False
    async with cli_connect(args) as (nc, js):
        for agent in args.agents:
            reply = await action(nc, js, agent, default_deployer(), args.reason)
            failed = failed or not reply.get("ok")
            emit(reply, args.json)
    return 1 if failed else 0
