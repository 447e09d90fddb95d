"""`o-bus up`: the whole platform on one machine.

Locks the data dir (one platform per data dir), starts an embedded nats-server with JetStream
(unless --nats names one), declares the streams and buckets, registers the reference agents,
starts the services as child processes (several splitters in one queue group, a standby
supervisor and arbiter, the health monitor), prints the NATS URL, and runs until SIGINT, SIGTERM
or SIGHUP; then stops everything it started. A service or nats-server that dies meanwhile is
restarted within the agents' restart-intensity rules; every child dies with `up`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from nats.aio.msg import Msg

from o_bus.agent.catalogue import Catalogue
from o_bus.common.answers import until_answered
from o_bus.common.connect import connect
from o_bus.common.urls import URL_FILE, resolve_url
from o_bus.config import StorageConfig, nats_url_from_env
from o_bus.errors import ConfigurationError, OBusError
from o_bus.evolution.deploy import default_deployer
from o_bus.platform.agents import add_agent, is_file_spec
from o_bus.platform.lineage import (
    PLATFORM_PID_ENV,
    become_subreaper,
    child_pids,
    die_with_parent,
    reap_orphans,
)
from o_bus.platform.lock import DataDirLock, DataDirLockedError
from o_bus.platform.server_keeper import ServerKeeper
from o_bus.platform.service_set import ServiceSet
from o_bus.runtime.registration import register_definitions
from o_bus.server.embedded import EmbeddedServer
from o_bus.store import layout
from o_bus.store.provision import provision
from o_bus.store.registry import Registry
from o_bus.supervision.records import SupervisionPolicy
from o_bus.tracing import otlp_environment

__all__ = [
    "SERVICES",
    "cmd_up",
    "default_splitters",
    "register_definitions",
    "service_commands",
]

log = logging.getLogger(__name__)
# The bus services `o-bus up` runs, each in its own process. The supervisor runs the agents.
SERVICES = ("splitter", "supervisor", "health", "arbiter", "feedback", "triggers")


def _installed_specs(args: argparse.Namespace) -> list[str]:
    """``--agent module:attr`` specs: code installed where the services run. (A ``file.py``
    spec is registered with its code in the code store instead; services load it from there.)"""
    return [spec for spec in args.agent or [] if not is_file_spec(spec)]


def service_commands(url: str, args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """(instance name, command line) of every service process `o-bus up` runs."""
    base = [sys.executable, "-m", "o_bus.cli.main", "run"]
    options = ["--nats", url, "--snapshot-every", str(args.snapshot_every)]
    for spec in _installed_specs(args):
        options += ["--agent", spec]
    counts = {
        "splitter": args.splitters or default_splitters(),
        "supervisor": 2,  # the second one stands by (leader lease) and adopts the agents
        "arbiter": 2,  # likewise
        "health": 1,  # serves the metrics port: one is enough, restarted if it dies
        "feedback": 2,  # a queue group: either answers
        "triggers": 2,  # the second one stands by (leader lease)
    }
    commands = []
    data_dir = str(Path(args.data_dir).resolve())
    host, port = metrics_address(args.metrics_port, args.metrics_host)
    for service in SERVICES:
        extra = []
        if service == "health":
            extra = ["--host", host, "--port", str(port), "--data-dir", data_dir]
        for number in range(1, counts[service] + 1):
            commands.append((f"{service}-{number}", [*base, service, *options, *extra]))
    if not args.no_console:
        console = ["--host", args.console_host, "--port", str(args.console_port)]
        commands.append(
            ("console-1", [*base, "console", *options, *console, "--data-dir", data_dir])
        )
    return commands


def metrics_address(port: str | int, host: str | None) -> tuple[str, int]:
    """``--metrics-port`` (a port, or HOST:PORT) and ``--metrics-host`` as (host, port)."""
    text = str(port)
    named_host = None
    if ":" in text:
        named_host, _, text = text.rpartition(":")
        named_host = named_host.strip("[]")
    if not text.isdigit() or int(text) > 65535:
        raise ConfigurationError(f"--metrics-port {port!r}: not a port or HOST:PORT")
    if named_host and host and named_host != host:
        raise ConfigurationError("--metrics-host and the host in --metrics-port disagree")
    return host or named_host or "127.0.0.1", int(text)


def default_splitters() -> int:
    """Splitters to run: two (no single point of failure), or one per four cores on bigger
    machines (four on 16 cores, where three splitters already doubled one's throughput)."""
    return max(2, (os.cpu_count() or 1) // 4)


def _spawn(command: list[str]) -> subprocess.Popen[bytes]:
    # Own session: Ctrl-C reaches `up` only, which stops the services in order. Parent-death
    # signal: a `kill -9` of `up` takes them along.
    return subprocess.Popen(command, start_new_session=True, preexec_fn=die_with_parent())


def _stop_orphans(known: set[int], timeout: float = 10.0) -> None:
    """Stop the processes `up` adopted as subreaper (agents of a dead supervisor), by PID."""
    orphans = child_pids() - known
    for pid in orphans:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while orphans and time.monotonic() < deadline:
        reap_orphans(known)
        orphans &= child_pids()
        time.sleep(0.05)
    for pid in orphans:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    while orphans & child_pids() and time.monotonic() < deadline + 5.0:
        reap_orphans(known)
        time.sleep(0.05)


async def _wait_ready(
    url: str, services: list[str], agents: list[str], timeout: float = 30.0
) -> None:
    """Wait until each service answers and each agent has an active process (an agent that
    has none within ``timeout`` is reported, not waited for)."""
    async with connect(url, "o-bus-up") as (nc, _):
        active: set[str] = set()
        all_active = asyncio.Event()

        async def on_beat(msg: Msg) -> None:
            if b'"role":"active"' in msg.data:
                active.add(msg.subject.removeprefix(layout.HEARTBEAT_PREFIX))
                if set(agents) <= active:
                    all_active.set()

        beats = await nc.subscribe(layout.HEARTBEAT_PREFIX + "*", cb=on_beat)
        deadline = time.monotonic() + timeout
        for service in services:
            subject = layout.service_status_subject(service)
            try:
                await until_answered(nc, subject, timeout=deadline - time.monotonic())
            except TimeoutError:
                raise ConfigurationError(f"{service} did not become ready in {timeout}s") from None
        if agents:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_active.wait(), max(0.0, deadline - time.monotonic()))
        if missing := sorted(set(agents) - active):
            # Reported, never a reason to stop the others (see `o-bus ps`, `history --system`).
            _say(f"no active process yet for {', '.join(missing)}; see `o-bus ps`")
        await beats.unsubscribe()


async def _prepare(url: str, args: argparse.Namespace) -> list[str]:
    async with connect(url, "o-bus-up") as (_, js):
        await provision(js, StorageConfig(replicas=args.replicas))
        policy = SupervisionPolicy(standby=True) if args.standby else None
        await register_definitions(js, Catalogue.discover(_installed_specs(args)), policy)
        for spec in args.agent or []:
            if is_file_spec(spec):  # registered with its code: the next `up` needs no flag
                try:
                    await add_agent(js, spec, by=default_deployer(), policy=policy)
                except OBusError as err:
                    _say(f"agent {spec} not added: {err.message}")
        names = [record.name for record in await Registry(js).all()]
    log.info("streams ready; agents: %s", ", ".join(names))
    return names


def _say(text: str) -> None:
    print(f"o-bus up: {text}", file=sys.stderr, flush=True)


def cmd_up(args: argparse.Namespace) -> int:
    from o_bus.common.event_loop import install_uvloop

    install_uvloop()
    data_dir: Path = args.data_dir
    lock = DataDirLock(data_dir)
    try:
        lock.acquire()
    except DataDirLockedError as err:
        _say(err.message)
        return 2
    # Children inherit both: agents keep local projections (memory indexes) under the data
    # dir, and agent processes follow their lineage back to this process (ParentWatch).
    os.environ["O_BUS_DATA_DIR"] = str(data_dir.resolve())
    os.environ[PLATFORM_PID_ENV] = str(os.getpid())
    from o_bus.evolution.provenance import operator_signer

    operator_signer(data_dir)  # the code-signing key and the trusted-keys file, on first start
    if args.otlp:  # every process `up` starts (services, agents, candidates) exports there
        os.environ.update(otlp_environment(args.otlp))
    become_subreaper()
    server: EmbeddedServer | None = None
    external = args.nats or nats_url_from_env()
    services = ServiceSet(_spawn, say=_say)
    stop = {"signal": 0}

    def on_signal(signum: int, _frame: object) -> None:
        stop["signal"] = signum

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    try:
        if external:
            url = resolve_url(external)
        else:
            server = EmbeddedServer(
                data_dir / "nats",
                port=args.port,
                sync_interval=args.sync_interval,
                preexec_fn=die_with_parent(signal.SIGTERM),  # it flushes its store on SIGTERM
                pass_fds=(lock.fd,),  # the store stays locked until the server is gone
            )
            server.start()
            url = server.url
            (data_dir / URL_FILE).write_text(url + "\n")
        lock.record_url(url)
        agents = asyncio.run(_prepare(url, args))
        for name, command in service_commands(url, args):
            services.add(name, command)
        asyncio.run(_wait_ready(url, list(SERVICES), agents))
        print(f"O is up. NATS: {url}", flush=True)
        if not args.no_console:
            _announce_console(data_dir)
        print("Try:  o-bus send counter increment '{\"by\": 2}'   (Ctrl-C stops)", flush=True)
        keeper = ServerKeeper(server, services.policy, say=_say) if server is not None else None
        while not stop["signal"]:
            if keeper is not None:
                keeper.check()
            services.check()
            reap_orphans(_known(services, server))
            time.sleep(0.1)
        return 0
    except OBusError as err:
        _say(err.message)
        return 1
    finally:
        services.stop()
        _stop_orphans(_known(services, server))
        if server is not None:
            server.stop()
            (data_dir / URL_FILE).unlink(missing_ok=True)
        lock.release()
        print("O is down.", flush=True)


def _announce_console(data_dir: Path, timeout: float = 10.0) -> None:
    """Print where the console listens, once its process wrote it (it may still be starting)."""
    from o_bus.common.access_tokens import token_file
    from o_bus.console.server import CONSOLE_URL_FILE

    deadline = time.monotonic() + timeout
    written = data_dir / CONSOLE_URL_FILE
    while not written.is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not written.is_file():
        _say("the web console did not start; see its log above")
        return
    print(
        f"Console: {written.read_text().strip()}?token=$(cat {token_file(data_dir, 'operator')})",
        flush=True,
    )


def _known(services: ServiceSet, server: EmbeddedServer | None) -> set[int]:
    """The children `up` started itself (reaped by their own Popen)."""
    pids = services.pids()
    if server is not None and server.pid is not None:
        pids.add(server.pid)
    return pids
