"""``python -m o_bus.evolution.candidate AGENT VERSION``: what the arbiter runs in the sandbox."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from o_bus.common.connect import connect
from o_bus.common.urls import resolve_url
from o_bus.evolution.boundary import bus_url
from o_bus.evolution.registered import registered_definition
from o_bus.store.registry import Registry

from .process import CandidateProcess
from .tracing import configure_candidate_tracing


async def _main(args: argparse.Namespace) -> int:
    configure_candidate_tracing()  # shadow spans, if tracing is configured and can export
    url = bus_url(resolve_url(args.nats))  # inside the sandbox: the bus through its broker
    async with connect(url, f"o-bus-candidate-{args.agent}") as (nc, js):
        record = await Registry(js).get(args.agent)
        registered = await registered_definition(js, record, args.agent_spec)
        process = CandidateProcess(
            nc, js, args.agent, args.version, registered, stats_interval=args.stats_interval
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await process.run(stop)


def main() -> None:
    parser = argparse.ArgumentParser(prog="o-bus-candidate")
    parser.add_argument("agent")
    parser.add_argument("version")
    parser.add_argument("--nats")
    parser.add_argument("--agent", dest="agent_spec", action="append", default=[])
    parser.add_argument("--stats-interval", type=float, default=0.2)
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s candidate[{args.agent}] %(levelname)s %(message)s"
    )
    sys.exit(asyncio.run(_main(args)))


if __name__ == "__main__":
    main()
