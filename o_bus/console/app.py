"""The console's web app: the pages (one shell, plain JavaScript modules, no build step),
the JSON API they read, and the live streams, behind the token check."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from o_bus.agent.catalogue import Catalogue
from o_bus.common.access_tokens import Tokens
from o_bus.common.connect import ConnectOptions
from o_bus.console import actions, agents, dead_letters, evolution, live_figures, timeline, travel
from o_bus.console.auth import TokenAuth
from o_bus.console.bus import connected
from o_bus.console.figures import FigureSampler
from o_bus.errors import AgentUnavailableError, InvalidRequestError, NotFoundError, OBusError

__all__ = ["STATIC", "build_app"]

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


def _status(err: OBusError) -> int:
    if isinstance(err, NotFoundError):
        return 404
    if isinstance(err, InvalidRequestError):
        return 400
    if isinstance(err, AgentUnavailableError):
        return 503
    return 500


async def _on_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OBusError)
    status = _status(exc)
    if status == 500:
        log.warning("console %s: %s", request.url.path, exc.message)
    return JSONResponse(
        {"ok": False, "error": exc.message, "code": str(exc.code)}, status_code=status
    )


async def index(_: Request) -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})


async def me(request: Request) -> JSONResponse:
    return JSONResponse({"role": request.state.role})


def build_app(
    url: str,
    tokens: Tokens,
    *,
    options: ConnectOptions | None = None,
    catalogue: Catalogue | None = None,
    sample_every: float = 1.0,
) -> Starlette:
    """The console for the platform at NATS ``url``, connecting as ``options`` say."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with connected(url, options) as bus:
            app.state.bus = bus
            app.state.figures = FigureSampler(bus.nc, sample_every)
            app.state.figures.start()
            try:
                yield
            finally:
                await app.state.figures.stop()

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/api/me", me),
            *agents.routes,
            *timeline.routes,
            *travel.routes,
            *dead_letters.routes,
            *evolution.routes,
            *live_figures.routes,
            *actions.routes,
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        middleware=[Middleware(TokenAuth, tokens=tokens)],
        exception_handlers={OBusError: _on_error},
        lifespan=lifespan,
    )
    app.state.catalogue = catalogue or Catalogue.discover([])
    return app
