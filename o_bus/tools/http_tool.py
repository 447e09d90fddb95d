"""Built-in tool ``http``: one HTTP request, the response as text (and JSON if asked).

Server errors (5xx) and 429 are retryable failures; other statuses are results the agent sees.
``allowed_urls`` restricts where requests may go (prefixes); the default allows any URL.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import from_json, to_json

from o_bus.tools.http_client import http_request
from o_bus.tools.spec import Tool, ToolContext, ToolFailure
from o_bus.wire.headers import CONTENT_TYPE

__all__ = ["HttpRequest", "HttpResult", "http_tool"]

_TOKEN = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")
_FORBIDDEN_HEADERS = {"host", "content-length", "connection", "transfer-encoding"}


class HttpRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    url: str = Field(min_length=8, max_length=2048, pattern=r"^https?://[^\s]+$")
    headers: dict[str, str] = Field(default_factory=dict, max_length=32)
    body: str | None = Field(None, max_length=64 * 1024)
    json_body: Any = None
    parse_json: bool = False

    @field_validator("headers")
    @classmethod
    def _safe_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not _TOKEN.match(name) or any(c in value for c in "\r\n\0"):
                raise ValueError(f"header {name[:50]!r} has a forbidden character")
            if name.lower() in _FORBIDDEN_HEADERS:
                raise ValueError(f"header {name!r} is set by the tool")
            if len(value) > 4096:
                raise ValueError(f"header {name!r} is longer than 4096 characters")
        return headers


class HttpResult(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    status: int
    content_type: str = ""
    body: str
    data: Any = None


def http_tool(
    name: str = "http",
    *,
    allowed_urls: Sequence[str] | None = None,
    max_response_bytes: int = 48 * 1024,
    **policy: Any,
) -> Tool:
    """The HTTP tool, named ``name``, with the given policy (see :class:`Tool`)."""
    prefixes = tuple(allowed_urls) if allowed_urls is not None else None

    async def run(request: HttpRequest, ctx: ToolContext) -> HttpResult:
        if prefixes is not None and not request.url.startswith(prefixes):
            raise ToolFailure(f"URL {request.url[:200]!r} is not allowed for tool {name!r}")
        headers = dict(request.headers)
        body = b""
        if request.json_body is not None:
            body = to_json(request.json_body)
            headers.setdefault(CONTENT_TYPE, "application/json")
        elif request.body is not None:
            body = request.body.encode()
        response = await http_request(
            request.method,
            request.url,
            headers=headers,
            body=body,
            max_response_bytes=max_response_bytes,
        )
        if response.status >= 500 or response.status == 429:
            raise ToolFailure(
                f"{request.method} {request.url[:200]} answered {response.status} "
                f"{response.reason[:100]}",
                retryable=True,
            )
        try:
            text = response.body.decode()
        except UnicodeDecodeError as err:
            raise ToolFailure(
                f"the response body is not UTF-8 text (byte {err.start} of {len(response.body)})"
            ) from err
        data = None
        if request.parse_json and text:
            try:
                data = from_json(text)
            except ValueError as err:
                raise ToolFailure(f"the response body is not valid JSON: {err}") from err
        return HttpResult(
            status=response.status,
            content_type=response.headers.get(CONTENT_TYPE, "")[:200],
            body=text,
            data=data,
        )

    policy.setdefault("description", "one HTTP request; the response as text or JSON")
    return Tool(name, HttpRequest, HttpResult, run, **policy)
