"""Record golden histories: real requests through a real platform on a private nats-server.

    python -m o_bus.cli.record_histories [OUTDIR] [--agent path/to/agent.py:attr ...]

writes ``OUTDIR/<o_bus version>/<agent>/`` (default ``tests/data/histories``) for the reference
agents (counter, echo, memory) and any ``--agent`` module that defines ``golden_traffic``: the
agent's stream, snapshots and WAL records, and the state the live agent held at the end (see
:mod:`o_bus.replay.history_file`). Run it when a release is cut and commit the new directory:
the golden-history test then folds it with every later version of the code.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError as JsNotFoundError

import o_bus
from o_bus.agent.catalogue import Catalogue, find_definition, import_file
from o_bus.agent.definition import AgentDefinition
from o_bus.agent.lifecycle import LifecycleState
from o_bus.common.connect import connect
from o_bus.config import RuntimeConfig, StorageConfig
from o_bus.errors import ConfigurationError, OBusError
from o_bus.memory.projection import DATA_DIR_ENV
from o_bus.replay.golden_traffic import REFERENCE_TRAFFIC, Traffic
from o_bus.replay.history_file import RecordedHistory
from o_bus.requests import send
from o_bus.runtime.host import AgentHost
from o_bus.server.embedded import EmbeddedServer
from o_bus.store import layout
from o_bus.store.event_records import H_SEQ, H_WAL, utc_now
from o_bus.store.log_record import LogRecord
from o_bus.store.provision import ensure_agent_stream, provision
from o_bus.store.registry import AgentRecord, Registry
from o_bus.store.snapshots import Snapshot

__all__ = ["DEFAULT_OUTDIR", "main", "record_histories"]

DEFAULT_OUTDIR: Final = Path("tests/data/histories")
SNAPSHOT_EVERY: Final = 4
WAIT_SECONDS: Final = 30.0
Recorded = dict[str, tuple[AgentDefinition[Any], Traffic]]


async def _until(probe: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not await probe():
        if time.monotonic() > deadline:
            raise OBusError(f"recording: gave up waiting for {what}")
        await asyncio.sleep(0.02)


async def _read_all(js: JetStreamContext, stream: str, subject: str) -> list[LogRecord]:
    """Every stored message of ``subject`` in ``stream``, in order, read with direct gets."""
    found: list[LogRecord] = []
    seq = 1
    while True:
        try:
            msg = await js.get_msg(stream, seq=seq, subject=subject, next=True)
        except JsNotFoundError:
            return found
        found.append(LogRecord.from_raw(msg))
        seq = (msg.seq or seq) + 1


async def _register(js: JetStreamContext, catalogue: Catalogue) -> None:
    registry = Registry(js)
    for name in catalogue.names():
        await ensure_agent_stream(js, name)
        commands = sorted(catalogue.get(name).command_types)
        await registry.register(
            AgentRecord(name=name, definition=name, commands=commands, created_at=utc_now())
        )


async def _drive(nc: Client, agent: str, traffic: Traffic) -> None:
    for n, (command, data) in enumerate(traffic, 1):
        await send(nc, agent, command, data, request_id=f"golden-{agent}-{n}")


async def _history(
    js: JetStreamContext, host: AgentHost, definition: AgentDefinition[Any], path: Path
) -> RecordedHistory:
    agent = definition.name
    worker = host.workers[agent]
    snap_subject = f"$KV.{layout.SNAPSHOTS_BUCKET}.{agent}"
    snap_stream = f"KV_{layout.SNAPSHOTS_BUCKET}"

    async def snapshots_settled() -> bool:  # the snapshot being taken, if any, is stored
        stored = await _read_all(js, snap_stream, snap_subject)
        newest = Snapshot.decode(stored[-1].data).seq if stored else 0
        return newest == worker.snapshotter.seq

    await _until(snapshots_settled, f"the snapshots of {agent!r}")
    events = await _read_all(js, layout.events_stream(agent), ">")
    last = [r for r in events if r.subject == layout.event_subject(agent)][-1:]
    expected = {
        "agent": agent,
        "definition": definition.name,
        "definition_version": definition.version,
        "recorded_with": o_bus.__version__,
        "state_schema_version": definition.state_schema_version,
        "seq": int(last[0].headers[H_SEQ]) if last else 0,
        "stream_seq": last[0].seq if last else 0,
        "wal_seq": int(last[0].headers.get(H_WAL, "0")) if last else 0,
        "state": worker.committed_state.model_dump(mode="json"),
    }
    return RecordedHistory(
        path=path,
        agent=agent,
        events=events,
        snapshots=await _read_all(js, snap_stream, snap_subject),
        wal=await _read_all(js, layout.WAL_STREAM, layout.wal_subject(agent)),
        expected=expected,
    )


async def record_histories(url: str, agents: Recorded, outdir: Path) -> list[Path]:
    """Run ``agents``' traffic through a splitter and an agent host on ``url``; write each
    agent's history under ``outdir``. Returns the directories written."""
    from o_bus.handlers.splitter.service import Splitter

    catalogue = Catalogue([definition for definition, _ in agents.values()])
    config = RuntimeConfig(snapshot_every=SNAPSHOT_EVERY)
    written: list[Path] = []
    async with connect(url, "o-bus-recorder") as (nc, js):
        await provision(js, StorageConfig(storage="file"))
        await _register(js, catalogue)
        async with (
            connect(url, "o-bus-recorder-splitter") as (snc, sjs),
            connect(url, "o-bus-recorder-host") as (hnc, hjs),
        ):
            splitter = Splitter(snc, sjs, config)
            host = AgentHost(hnc, hjs, catalogue, config)
            await splitter.start()
            try:
                await host.start()
                try:
                    for name, (definition, traffic) in agents.items():

                        async def ready(name: str = name) -> bool:
                            worker = host.workers.get(name)
                            running = worker is not None and (
                                worker.lifecycle is LifecycleState.RUNNING
                            )
                            return running and name in splitter.routes.commands

                        await _until(ready, f"agent {name!r} to serve")
                        await _drive(nc, name, traffic)
                        history = await _history(js, host, definition, outdir / name)
                        history.write()
                        written.append(history.path)
                finally:
                    await host.stop()
            finally:
                await splitter.stop()
    return written


def _agents(specs: list[str]) -> Recorded:
    found = Catalogue.discover()
    agents: Recorded = {
        name: (found.get(name), REFERENCE_TRAFFIC[name]) for name in REFERENCE_TRAFFIC
    }
    for spec in specs:
        target, _, attr = spec.partition(":")
        path = Path(target).resolve()
        if not path.is_file():
            raise ConfigurationError(f"agent file {path} does not exist")
        module = import_file(path, f"o_bus_recorded_{path.stem}")
        traffic = getattr(module, "golden_traffic", None)
        if not isinstance(traffic, list):
            raise ConfigurationError(f"{path} defines no golden_traffic list")
        definition = find_definition(module, attr, spec)
        agents[definition.name] = (definition, traffic)
    return agents


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m o_bus.cli.record_histories")
    parser.add_argument("outdir", nargs="?", type=Path, default=DEFAULT_OUTDIR)
    parser.add_argument("--release", default=o_bus.__version__, help="subdirectory name")
    parser.add_argument(
        "--agent", action="append", default=[], help="path/to/agent.py[:attr] to record too"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        agents = _agents(args.agent)
        with tempfile.TemporaryDirectory() as tmp, EmbeddedServer(Path(tmp)) as server:
            before = os.environ.get(DATA_DIR_ENV)
            os.environ[DATA_DIR_ENV] = tmp  # projections' files are a by-product: not kept
            try:
                written = asyncio.run(
                    record_histories(server.url, agents, args.outdir / args.release)
                )
            finally:
                if before is None:
                    os.environ.pop(DATA_DIR_ENV, None)
                else:
                    os.environ[DATA_DIR_ENV] = before
    except OBusError as err:
        sys.stderr.write(f"error: {err.message}\n")
        return 1
    for path in written:
        sys.stdout.write(f"{path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
