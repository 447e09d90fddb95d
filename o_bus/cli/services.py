"""`o-bus run SERVICE`: one bus service in this process (what `o-bus up` starts as children)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic_core import to_json

from o_bus.agent.catalogue import Catalogue
from o_bus.common.access_tokens import Tokens
from o_bus.common.connect import connect
from o_bus.common.priority import idle_priority
from o_bus.common.signals import run_until_signalled
from o_bus.common.urls import DEFAULT_DATA_DIR, resolve_url
from o_bus.config import RuntimeConfig
from o_bus.errors import ConfigurationError, OBusError, StorageError
from o_bus.platform.lineage import ParentWatch
from o_bus.runtime.agent_code import STORE_PATIENCE_TTLS, agent_code_when_the_store_answers
from o_bus.runtime.agent_process import AgentProcess
from o_bus.store import layout
from o_bus.supervision.records import EXIT_UNLOADABLE
from o_bus.tracing import configure as configure_tracing

if TYPE_CHECKING:
    from o_bus.handlers.arbiter.service import Arbiter
    from o_bus.handlers.feedback.service import FeedbackService
    from o_bus.handlers.health.service import HealthMonitor
    from o_bus.handlers.splitter.service import Splitter
    from o_bus.handlers.supervisor.service import Supervisor
    from o_bus.handlers.triggers.service import TriggerService
    from o_bus.runtime.host import AgentHost

__all__ = ["cmd_run"]

log = logging.getLogger(__name__)
_HOST_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
ORPHAN_CHECK_INTERVAL = 0.25  # seconds
ORPHAN_STOP_GRACE = 3.0  # seconds an orphaned agent process may take to stop


def _agent_specs(args: argparse.Namespace) -> list[str]:
    """``--agent`` options to pass on to child processes (extra agent definitions)."""
    return [arg for spec in args.agent or [] for arg in ("--agent", spec)]


async def run_agent_process(args: argparse.Namespace) -> int:
    """`o-bus run agent NAME [--standby]`: one agent in this process, as the supervisor runs it."""
    url = resolve_url(args.nats)
    if args.service == "console":
        from o_bus.console.server import serve_or_idle

        return await serve_or_idle(url, args.host, args.port, _data_dir(args))
    config = RuntimeConfig(snapshot_every=args.snapshot_every)
    async with connect(url, f"o-bus-agent-{args.name}") as (nc, js):
        try:
            routes, definition = await agent_code_when_the_store_answers(
                nc, js, args.name, args.agent, STORE_PATIENCE_TTLS * args.lease_ttl
            )
        except StorageError:
            raise  # a crash: the supervisor restarts it, within its restart intensity
        except OBusError as err:
            # Reported and left stopped by the supervisor; the other agents carry on.
            log.error("agent %s: its code cannot be loaded: %s", args.name, err.message)
            return EXIT_UNLOADABLE
        process = AgentProcess(
            nc,
            js,
            args.name,
            definition,
            config,
            routes=routes,
            standby=args.standby,
            lease_ttl=args.lease_ttl,
            heartbeat_interval=args.heartbeat_interval,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        lineage = asyncio.create_task(_stop_when_orphaned(ParentWatch(), stop))
        try:
            return await process.run(stop)
        finally:
            lineage.cancel()


async def _stop_when_orphaned(watch: ParentWatch, stop: asyncio.Event) -> None:
    """Stop this agent process once the platform that runs it is gone (see ParentWatch)."""
    while True:
        await asyncio.sleep(ORPHAN_CHECK_INTERVAL)
        if not watch.check():
            break
    log.warning("agent process %d: its platform is gone; stopping", os.getpid())
    stop.set()
    # A graceful stop needs NATS, which usually went down with the platform: do not linger.
    await asyncio.sleep(ORPHAN_STOP_GRACE)
    os.kill(os.getpid(), signal.SIGKILL)


def _host_name(args: argparse.Namespace) -> str | None:
    """`run host --name H`: the host's name; None for `run supervisor` (the default host)."""
    if args.service != "host":
        return None
    name: str | None = args.host_name
    if not name or not _HOST_NAME.fullmatch(name):
        raise ConfigurationError(
            "`o-bus run host` needs --name NAME (letters, digits, '-' and '_')"
        )
    return name


def _data_dir(args: argparse.Namespace) -> Path:
    return args.data_dir or Path(os.environ.get("O_BUS_DATA_DIR") or DEFAULT_DATA_DIR)


def _metrics_tokens(args: argparse.Namespace) -> Tokens | None:
    """The console's tokens when /metrics must ask for one (off loopback, or asked for)."""
    loopback = args.host in ("127.0.0.1", "localhost", "::1") or args.host.startswith("127.")
    if args.metrics_auth == "none" or (args.metrics_auth == "auto" and loopback):
        return None
    return Tokens.load(_data_dir(args))


async def cmd_run(args: argparse.Namespace) -> int:
    configure_tracing(args.service)  # the process's tracer, if tracing is configured
    if args.service == "agent":
        if not args.name:
            raise ConfigurationError("`o-bus run agent` needs the agent's name")
        return await run_agent_process(args)
    url = resolve_url(args.nats)
    if args.service == "console":
        from o_bus.console.server import serve_or_idle

        return await serve_or_idle(url, args.host, args.port, _data_dir(args))
    config = RuntimeConfig(snapshot_every=args.snapshot_every)
    async with connect(url, f"o-bus-{args.service}") as (nc, js):
        # Imported here: an agent process (the most often started) needs none of these.
        from o_bus.handlers.arbiter.service import Arbiter
        from o_bus.handlers.feedback.service import FeedbackService
        from o_bus.handlers.health.service import HealthMonitor
        from o_bus.handlers.splitter.service import Splitter
        from o_bus.handlers.supervisor.service import Supervisor
        from o_bus.handlers.triggers.service import TriggerService
        from o_bus.runtime.host import AgentHost

        service: (
            Splitter
            | AgentHost
            | Supervisor
            | HealthMonitor
            | Arbiter
            | FeedbackService
            | TriggerService
        )
        if args.service == "splitter":
            service = Splitter(nc, js, config)
        elif args.service == "health":
            service = HealthMonitor(
                nc,
                js,
                host=args.host,
                port=args.port,
                publish_interval=args.publish_interval,
                tokens=_metrics_tokens(args),
            )
        elif args.service == "arbiter":
            service = Arbiter(nc, js, url, agent_args=_agent_specs(args))
        elif args.service == "feedback":
            service = FeedbackService(nc, js)
        elif args.service == "triggers":
            # Its searches (and the evaluations they start) take only CPU live leaves idle.
            idle_priority()
            service = TriggerService(nc, js, url, catalogue=Catalogue.discover(args.agent))
        elif args.service in ("supervisor", "host"):
            agent_args = ["--snapshot-every", str(args.snapshot_every), *_agent_specs(args)]
            service = Supervisor(nc, js, url, agent_args=agent_args, host=_host_name(args))
        else:
            only = set(args.only) if args.only else None
            service = AgentHost(nc, js, Catalogue.discover(args.agent), config, only=only)

        async def answer(msg: object) -> None:
            status = {"service": args.service, "ready": True}
            if isinstance(service, AgentHost):
                status["agents"] = sorted(service.workers)
            if isinstance(service, Splitter):  # the agents it routes requests to, its intake
                status["agents"] = sorted(service.routes.agents)
                status["intake"] = service.figures()
            await msg.respond(to_json(status))  # type: ignore[attr-defined]

        async def start() -> None:
            try:
                await service.start()
            except OSError as err:  # the health monitor's HTTP port
                raise ConfigurationError(f"{args.service} cannot listen: {err}") from err
            await nc.subscribe(layout.service_status_subject(args.service), cb=answer)
            log.info("%s ready on %s", args.service, url)

        await run_until_signalled(start, service.stop)
    return 0
