"""`o-bus up`: the whole platform on one machine.

Starts an embedded nats-server with JetStream (unless --nats names one), declares the streams
and buckets, registers the reference agents, starts the splitter and the agent host as child
processes, prints the NATS URL, and runs until SIGINT/SIGTERM; then stops everything it started.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from pathlib import Path

from nats.aio.msg import Msg

from o_bus.agent.catalogue import Catalogue
from o_bus.common.answers import until_answered
from o_bus.common.children import ChildProcess, stop_all
from o_bus.common.connect import connect
from o_bus.common.urls import URL_FILE, resolve_url
from o_bus.config import StorageConfig, nats_url_from_env
from o_bus.errors import ConfigurationError, OBusError
from o_bus.runtime.registration import register_definitions
from o_bus.server.embedded import EmbeddedServer
from o_bus.store import layout
from o_bus.store.provision import provision
from o_bus.store.registry import Registry
from o_bus.supervision.records import SupervisionPolicy

__all__ = ["SERVICES", "cmd_up", "register_definitions"]

log = logging.getLogger(__name__)
# The bus services `o-bus up` runs, each in its own process. The supervisor runs the agents.
SERVICES = ("splitter", "supervisor", "health", "arbiter")


def _spawn(service: str, url: str, args: argparse.Namespace) -> ChildProcess:
    cmd = [
        sys.executable,
        "-m",
        "o_bus.cli.main",
        "run",
        service,
        "--nats",
        url,
        "--snapshot-every",
        str(args.snapshot_every),
    ]
    for spec in args.agent or []:
        cmd += ["--agent", spec]
    if service == "health":
        cmd += ["--port", str(args.metrics_port)]
    return ChildProcess(service, cmd)


async def _wait_ready(
    url: str, services: list[str], agents: list[str], timeout: float = 30.0
) -> None:
    """Wait until each service answers and each agent has an active process."""
    async with connect(url, "o-bus-up") as (nc, _):
        active: set[str] = set()

        async def on_beat(msg: Msg) -> None:
            if b'"role":"active"' in msg.data:
                active.add(msg.subject.removeprefix(layout.HEARTBEAT_PREFIX))

        beats = await nc.subscribe(layout.HEARTBEAT_PREFIX + "*", cb=on_beat)
        deadline = time.monotonic() + timeout
        for service in services:
            subject = layout.service_status_subject(service)
            try:
                await until_answered(nc, subject, timeout=deadline - time.monotonic())
            except TimeoutError:
                raise ConfigurationError(f"{service} did not become ready in {timeout}s") from None
        while not set(agents) <= active:
            if time.monotonic() > deadline:
                missing = ", ".join(sorted(set(agents) - active))
                raise ConfigurationError(f"no active process for {missing} after {timeout}s")
            await asyncio.sleep(0.05)
        await beats.unsubscribe()


async def _prepare(url: str, args: argparse.Namespace) -> list[str]:
    async with connect(url, "o-bus-up") as (_, js):
        await provision(js, StorageConfig(replicas=args.replicas))
        policy = SupervisionPolicy(standby=True) if args.standby else None
        await register_definitions(js, Catalogue.discover(args.agent), policy)
        names = [record.name for record in await Registry(js).all()]
    log.info("streams ready; agents: %s", ", ".join(names))
    return names


def cmd_up(args: argparse.Namespace) -> int:
    from o_bus.common.event_loop import install_uvloop

    install_uvloop()
    data_dir: Path = args.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    # Children inherit it: agents keep local projections (memory indexes) under the data dir.
    os.environ["O_BUS_DATA_DIR"] = str(data_dir.resolve())
    server: EmbeddedServer | None = None
    external = args.nats or nats_url_from_env()
    children: list[ChildProcess] = []
    stop = {"signal": 0}

    def on_signal(signum: int, _frame: object) -> None:
        stop["signal"] = signum

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        if external:
            url = resolve_url(external)
        else:
            server = EmbeddedServer(
                data_dir / "nats", port=args.port, sync_interval=args.sync_interval
            )
            server.start()
            url = server.url
            (data_dir / URL_FILE).write_text(url + "\n")
        agents = asyncio.run(_prepare(url, args))
        children = [_spawn(service, url, args) for service in SERVICES]
        asyncio.run(_wait_ready(url, list(SERVICES), agents))
        print(f"O is up. NATS: {url}", flush=True)
        print("Try:  o-bus send counter increment '{\"by\": 2}'   (Ctrl-C stops)", flush=True)
        while not stop["signal"]:
            for child in children:
                if (ended := child.exited()) is not None:
                    raise ConfigurationError(ended)
            time.sleep(0.2)
        return 0
    except OBusError as err:
        print(f"o-bus up: {err.message}", file=sys.stderr)
        return 1
    finally:
        stop_all(children, timeout=10.0)
        if server is not None:
            server.stop()
            (data_dir / URL_FILE).unlink(missing_ok=True)
        print("O is down.", flush=True)
