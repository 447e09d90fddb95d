"""The parent's end of a sandboxed candidate's only way out: a unix socket to the NATS server.

A :class:`BusBroker` listens on a unix socket in a private folder and connects each
connection made to it to the one NATS server address it was given, copying bytes both
ways. The candidate, in a network namespace of its own, reaches it through
:mod:`o_bus.evolution.netns`'s forwarder. What the candidate may do on the bus is then up to
the identity it connects with, as for any other client.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from o_bus.common.tasks import cancel_and_wait
from o_bus.errors import ConfigurationError

__all__ = ["BusBroker"]

_CHUNK = 256 * 1024


class BusBroker:
    """Connections to ``path`` are connected to the server of ``url`` (the NATS server, or
    another service the sandbox may reach, such as an OTLP collector), at most
    ``max_connections`` at a time (a candidate needs one; more are closed at once)."""

    def __init__(
        self,
        url: str,
        owner: int | None = None,
        default_port: int = 4222,
        max_connections: int = 4,
    ) -> None:
        first = url.split(",")[0].strip()
        parts = urlsplit(first if "://" in first else f"nats://{first}")
        if not parts.hostname:
            raise ConfigurationError(f"no host in {url!r}")
        default = {"http": 80, "https": 443}.get(parts.scheme, default_port)
        self.host, self.port = parts.hostname, parts.port or default
        self.url = first
        self.owner = owner
        self.max_connections = max_connections
        self.refused = 0
        self.folder = Path(tempfile.mkdtemp(prefix="o-bus-bus-"))
        self.path = self.folder / "bus.sock"
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> BusBroker:
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        if self.owner is not None:  # the sandbox's uid must be able to connect, nobody else
            os.chown(self.folder, self.owner, -1)
            os.chown(self.path, self.owner, -1)
        os.chmod(self.path, 0o600)
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._tasks) >= self.max_connections:
            self.refused += 1
            writer.close()
            return
        self._tasks.add(task)
        writers = [writer]
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
            writers.append(up_writer)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (OSError, asyncio.CancelledError):
            pass  # the server is gone, or the broker closes: the connection ends
        finally:
            self._tasks.discard(task)
            for each in writers:
                each.close()
                with contextlib.suppress(OSError, asyncio.CancelledError):
                    await each.wait_closed()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await cancel_and_wait(list(self._tasks))
        shutil.rmtree(self.folder, ignore_errors=True)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()
            else:
                writer.close()
