"""A tiny HTTP/1.1 server on asyncio streams: GET on a few fixed paths, one request per connection.

Enough for Prometheus scrapes and health probes, with no dependency. Requests are bounded
(line and header sizes, header count, time to send them); bodies are never read. A GET on a
route answers 200; any other method or path answers 404, and an unreadable request 400. With
``authorize``, a request without an accepted ``Authorization: Bearer`` token answers 401.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus

from o_bus.errors import ErrorCode, OBusError

__all__ = ["HttpServer", "Response"]

log = logging.getLogger(__name__)

MAX_LINE = 8192
MAX_HEADERS = 100


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


class BadRequest(OBusError):
    """An HTTP request that cannot be read (bad request line, too many headers)."""

    code = ErrorCode.MALFORMED_REQUEST


class HttpServer:
    """Serves ``routes`` (path -> response factory) on ``host:port`` (port 0: any free one)."""

    def __init__(
        self,
        routes: Mapping[str, Callable[[], Response]],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        read_timeout: float = 10.0,
        authorize: Callable[[str | None], object] | None = None,
    ) -> None:
        """``authorize``: token -> a truthy grant, or a falsy one to refuse (None: open)."""
        self.routes = dict(routes)
        self.authorize = authorize
        self.host, self.requested_port = host, port
        self.read_timeout = read_timeout
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The bound port (the real one when started with port 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the HTTP server is not listening")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self.host, self.requested_port, limit=MAX_LINE
        )
        log.info("health HTTP on http://%s:%d", self.host, self.port)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        # Connections first: on newer Pythons wait_closed() waits for every open connection.
        for task in list(self._clients):
            task.cancel()
        if self._clients:
            await asyncio.gather(*self._clients, return_exceptions=True)
        if server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 5.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
        try:
            try:
                method, path, token = await asyncio.wait_for(
                    _read_request(reader), self.read_timeout
                )
                if self.authorize is not None and not self.authorize(token):
                    response = Response(HTTPStatus.UNAUTHORIZED, b"a console token is needed\n")
                else:
                    response = self._respond(method, path)
            except (BadRequest, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                response = Response(HTTPStatus.BAD_REQUEST, b"bad request\n")
            except TimeoutError:
                response = Response(HTTPStatus.REQUEST_TIMEOUT, b"request timeout\n")
            with contextlib.suppress(ConnectionError):
                writer.write(_encode(response))
                await writer.drain()
        except Exception:
            log.exception("health HTTP: failed to serve a request")
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()
            if task is not None:
                self._clients.discard(task)

    def _respond(self, method: str, path: str) -> Response:
        route = self.routes.get(path.split("?", 1)[0])
        if method != "GET" or route is None:
            return Response(HTTPStatus.NOT_FOUND, b"not found\n")
        try:
            return route()
        except Exception:
            log.exception("health HTTP: %s failed", path[:200])
            return Response(HTTPStatus.INTERNAL_SERVER_ERROR, b"internal error\n")


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, str | None]:
    """Method, path and the bearer token of the Authorization header, if any."""
    line = await reader.readuntil(b"\n")
    parts = line.decode("latin-1").strip().split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise BadRequest("bad request line")
    token = None
    for _ in range(MAX_HEADERS):
        header = await reader.readuntil(b"\n")
        if header in (b"\r\n", b"\n"):
            return parts[0], parts[1], token
        name, _, value = header.decode("latin-1").partition(":")
        scheme, _, credentials = value.strip().partition(" ")
        if name.strip().lower() == "authorization" and scheme.lower() == "bearer":
            token = credentials.strip()
    raise BadRequest("too many headers")


def _encode(response: Response) -> bytes:
    reason = HTTPStatus(response.status).phrase
    head = (
        f"HTTP/1.1 {response.status} {reason}\r\n"
        f"Content-Type: {response.content_type}\r\n"
        f"Content-Length: {len(response.body)}\r\n"
        "Connection: close\r\n"
        "\r\n"
    )
    return head.encode("latin-1") + response.body
