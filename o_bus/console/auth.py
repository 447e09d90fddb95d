"""Who is asking: a token in ``Authorization: Bearer``, or the cookie a first visit with
``?token=`` sets (so a person opens the console from a link once). Viewers may read;
operators may also act. Every request without a valid token is refused (401)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from o_bus.common.access_tokens import Role, Tokens

__all__ = ["COOKIE", "TokenAuth", "require_operator", "role_of"]

COOKIE = "o_bus_console"


def role_of(request: Request) -> Role:
    role: Role = request.state.role
    return role


def require_operator(request: Request) -> JSONResponse | None:
    """A 403 answer for a viewer, None for an operator."""
    if role_of(request) == "operator":
        return None
    return JSONResponse(
        {"ok": False, "error": "this action needs the operator token (you are a viewer)"},
        status_code=403,
    )


class TokenAuth:
    """Pure ASGI middleware (no response buffering: the live streams pass straight through)."""

    def __init__(self, app: ASGIApp, tokens: Tokens) -> None:
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refusal = self._check(request)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _check(self, request: Request) -> Response | None:
        """None when the request may go on (its role set on ``request.state``)."""
        query_token = request.query_params.get("token")
        if query_token is not None:
            if self.tokens.role_of(query_token) is None:
                return JSONResponse({"ok": False, "error": "unknown token"}, status_code=401)
            # Set the cookie and drop the token from the address bar (and from history).
            target = request.url.remove_query_params("token")
            redirect = RedirectResponse(str(target), status_code=303)
            redirect.set_cookie(COOKIE, query_token, httponly=True, samesite="strict", path="/")
            return redirect
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else None
        role = self.tokens.role_of(token or request.cookies.get(COOKIE))
        if role is None:
            return JSONResponse(
                {"ok": False, "error": "a console token is needed (see docs/console.md)"},
                status_code=401,
            )
        request.state.role = role
        return None
