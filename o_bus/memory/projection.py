"""The memory projection: a SQLite file (items, vectors, episodes) derived from an agent's
stream, kept current by tailing it, rebuilt from the log when missing or stale.

Declare it on an agent (``agent.projection(MemoryProjection())``); the runtime opens it when
the agent becomes active and closes it on stop. The file lives at ``path`` if given, else
``$O_BUS_MEMORY_DIR/<agent>.sqlite``, else ``$O_BUS_DATA_DIR/memory/<agent>.sqlite``, else
``.o-bus/memory/<agent>.sqlite`` (``o-bus up`` sets ``O_BUS_DATA_DIR`` to its ``--data-dir``).
"""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError as JsNotFoundError

from o_bus.agent.definition import AgentDefinition
from o_bus.errors import StorageError
from o_bus.memory.database import SCHEMA_VERSION, MemoryDatabase, Position, remove_database
from o_bus.memory.embedder import Embedder, HashingEmbedder
from o_bus.memory.index import MemoryIndex
from o_bus.memory.projector import Projector, anchor_of
from o_bus.memory.tail import LogRecord, RequestRecord, StreamTail, read_requests
from o_bus.store import layout
from o_bus.wire.headers import CE_WALSEQ

__all__ = ["DATA_DIR_ENV", "MEMORY_DIR_ENV", "MemoryProjection", "default_path"]

log = logging.getLogger(__name__)
DATA_DIR_ENV = "O_BUS_DATA_DIR"
MEMORY_DIR_ENV = "O_BUS_MEMORY_DIR"


def default_path(agent: str) -> Path:
    if os.environ.get(MEMORY_DIR_ENV):
        return Path(os.environ[MEMORY_DIR_ENV]) / f"{agent}.sqlite"
    data_dir = Path(os.environ.get(DATA_DIR_ENV) or ".o-bus")
    return data_dir / "memory" / f"{agent}.sqlite"


class MemoryProjection:
    """The declaration: which embedder, where the file goes, whether to keep episodes."""

    name = "memory"

    def __init__(
        self,
        *,
        embedder: Embedder | None = None,
        path: Path | None = None,
        episodes: bool = True,
    ) -> None:
        self.embedder = embedder or HashingEmbedder()
        self.path = path
        self.episodes = episodes

    def path_for(self, agent: str) -> Path:
        return self.path if self.path is not None else default_path(agent)

    async def open(
        self, nc: Client, js: JetStreamContext, agent: str, definition: AgentDefinition[Any]
    ) -> MemoryIndex:
        """Open (or rebuild) the file for ``agent`` and start following its log."""
        runner = ProjectionRunner(self, nc, js, agent, definition)
        try:
            await runner.start()
        except BaseException:
            await runner.index.close()  # stops whatever did start
            raise
        return runner.index


async def _log_identity(js: JetStreamContext, agent: str) -> tuple[str, int]:
    """The stream's creation time (a recreated log is another log) and its last sequence."""
    try:
        info = await js.stream_info(layout.events_stream(agent))
    except JsNotFoundError:
        return "", 0
    except nats.errors.Error as err:
        raise StorageError(f"cannot read the end of {agent!r}'s log") from err
    created = info.created.isoformat() if info.created else ""
    return created, info.state.last_seq if info.state.messages else 0


async def _anchor_at(js: JetStreamContext, agent: str, stream_seq: int) -> str | None:
    try:
        msg = await js.get_msg(layout.events_stream(agent), stream_seq, direct=True)
    except nats.errors.Error:
        return None
    kind = (msg.subject or "").split(".", 2)[1] if msg.subject else ""
    return anchor_of(kind, stream_seq, msg.headers or {})


class ProjectionRunner:
    """Checks the file against the log, rebuilds it if stale, then tails the log into it."""

    def __init__(
        self,
        spec: MemoryProjection,
        nc: Client,
        js: JetStreamContext,
        agent: str,
        definition: AgentDefinition[Any],
    ) -> None:
        self.spec, self.nc, self.js = spec, nc, js
        self.agent, self.definition = agent, definition
        self.path = spec.path_for(agent)
        self.writer = ThreadPoolExecutor(1, thread_name_prefix=f"memory-{agent}")
        self.db: MemoryDatabase | None = None
        self.projector: Projector | None = None
        self.index = MemoryIndex(self.path, spec.embedder, self)
        self.applied = Position()
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._writing: asyncio.Task[None] | None = None
        self._failed: BaseException | None = None
        self.rebuilt_because: str | None = None

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.writer, fn, *args)

    async def _stale_reason(self, db: MemoryDatabase) -> str | None:
        meta = await self._run(db.meta)
        created, last = await _log_identity(self.js, self.agent)
        position = Position(
            int(meta.get("stream_seq", "0")), int(meta.get("seq", "0")), meta.get("anchor", "")
        )
        expected = {
            "schema": SCHEMA_VERSION,
            "agent": self.agent,
            "embedder": self.spec.embedder.name,
            "episodes": str(self.spec.episodes),
        }
        for key, value in expected.items():
            if meta.get(key) != value:
                return f"{key} is {meta.get(key)!r}, expected {value!r}"
        if meta.get("log_created") != created:
            return "the log was recreated since the index was built"
        if position.stream_seq > last:
            return f"the index is ahead of the log ({position.stream_seq} > {last})"
        if (
            position.stream_seq
            and await _anchor_at(self.js, self.agent, position.stream_seq) != position.anchor
        ):
            return f"the log differs at stream seq {position.stream_seq}"
        return None

    async def start(self) -> None:
        spec = self.spec
        db = await self._run(lambda: MemoryDatabase(self.path, dimensions=spec.embedder.dimensions))
        self.db = db
        reason = await self._stale_reason(db)
        if reason is not None:
            fresh = not (await self._run(db.meta))
            self.db = None
            await self._run(db.close)
            if not fresh:
                log.warning("memory index of %s is stale (%s): rebuilding", self.agent, reason)
                self.rebuilt_because = reason
            await self._run(remove_database, self.path)
            db = await self._run(
                lambda: MemoryDatabase(self.path, dimensions=spec.embedder.dimensions)
            )
            self.db = db
            created, _ = await _log_identity(self.js, self.agent)
            identity = {
                "schema": SCHEMA_VERSION,
                "agent": self.agent,
                "embedder": spec.embedder.name,
                "episodes": str(spec.episodes),
                "log_created": created,
                "dimensions": str(spec.embedder.dimensions),
            }

            def initialise() -> None:
                with db.transaction():
                    db.set_meta(identity)

            await self._run(initialise)
        self.db = db
        self.projector = await self._run(
            lambda: Projector(db, self.definition, spec.embedder, episodes=spec.episodes)
        )
        self.applied = self.projector.position
        tail = StreamTail(self.js, self.agent, self._apply)
        self._task = asyncio.create_task(
            tail.run(self.applied.stream_seq), name=f"memory-tail-{self.agent}"
        )
        await self.index.open()

    async def _apply(self, records: list[LogRecord]) -> None:
        """Read the batch's requests from the WAL while the previous batch is written."""
        assert self.projector is not None
        requests = {}
        if self.spec.episodes:
            requests = await read_requests(
                self.nc, self.agent, (int(r.headers.get(CE_WALSEQ, "0")) for r in records)
            )
        if self._writing is not None:
            await self._writing  # one batch in the writer at a time, in order
        self._writing = asyncio.create_task(self._write(records, requests))

    async def _write(self, records: list[LogRecord], requests: dict[int, RequestRecord]) -> None:
        assert self.projector is not None
        try:
            self.applied = await self._run(self.projector.apply, records, requests)
        except Exception as err:
            log.error("memory index of %s stopped: %s", self.agent, err)
            self._failed = err
            if self._task is not None:
                self._task.cancel()
            raise
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, seq: int, timeout: float) -> bool:
        """Wait until events up to agent sequence ``seq`` are applied; False on timeout."""
        if self.applied.seq >= seq:
            return True
        if self.failure is not None:
            return False

        async def reached() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: self.applied.seq >= seq)

        try:
            await asyncio.wait_for(reached(), timeout)
        except TimeoutError:
            return False
        return True

    @property
    def failure(self) -> BaseException | None:
        task = self._task
        if self._failed is not None or task is None or not task.done() or task.cancelled():
            return self._failed
        return task.exception()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._writing is not None:
            await asyncio.gather(self._writing, return_exceptions=True)
        if self.db is not None:
            await self._run(self.db.close)
        self.writer.shutdown(wait=True)
