"""Code-version commands: ``o-bus deploy AGENT PATH`` and ``o-bus versions AGENT``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from o_bus.cli.common import cli_connect, emit
from o_bus.evolution.code_store import CodeStore, default_cache_dir
from o_bus.evolution.deploy import default_deployer, deploy

__all__ = ["cmd_deploy", "cmd_versions"]


async def cmd_deploy(args: argparse.Namespace) -> int:
    async with cli_connect(args, "o-bus-cli") as (_, js):
        version = await deploy(
            js,
            args.agent,
            Path(args.path),
            by=args.by or default_deployer(),
            note=args.note or "",
            attr=args.attr,
            timeout=args.timeout,
        )
    emit(version.model_dump(), args.json)
    return 0


async def cmd_versions(args: argparse.Namespace) -> int:
    async with cli_connect(args, "o-bus-cli") as (_, js):
        versions = await CodeStore(js, default_cache_dir()).list(args.agent)
    if args.json:
        emit([v.model_dump() for v in versions], True)
        return 0
    if not versions:
        sys.stdout.write(f"agent {args.agent!r} has no deployed code versions\n")
        return 0
    sys.stdout.write(f"{'DIGEST':<19} {'VERSION':<12} {'DEPLOYED AT':<28} {'BY':<20} NOTE\n")
    for v in versions:
        sys.stdout.write(
            f"{v.digest[:19]:<19} {v.code_version:<12} {v.deployed_at:<28} "
            f"{v.deployed_by:<20} {v.note}\n"
        )
    return 0
