"""Built-in tool ``kv``: get, put or delete a string value in the JetStream bucket ``o_tool_kv``.

Keys are scoped to the calling agent by default (stored as ``<agent>.<key>``), so agents do not
see each other's values; ``scope="shared"`` gives one namespace to every agent using the tool.
A put may carry ``expected_revision`` (0: the key must not exist) for compare-and-set.
"""

from __future__ import annotations

from typing import Any, Literal

import nats.errors
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from pydantic import BaseModel, ConfigDict, Field, model_validator

from o_bus.errors import StorageError
from o_bus.store import layout
from o_bus.store.provision import ensure_bucket
from o_bus.tools.spec import Tool, ToolContext, ToolFailure

__all__ = ["KvRequest", "KvResult", "kv_tool"]


class KvRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    op: Literal["get", "put", "delete"]
    key: str = Field(
        min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_=/-]+(\.[A-Za-z0-9_=/-]+)*$"
    )
    value: str | None = Field(None, max_length=64 * 1024)
    expected_revision: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _value_for_put(self) -> KvRequest:
        if (self.op == "put") != (self.value is not None):
            raise ValueError("give a value with put, and only with put")
        if self.expected_revision is not None and self.op != "put":
            raise ValueError("expected_revision applies to put only")
        return self


class KvResult(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    key: str
    found: bool
    value: str | None = None
    revision: int | None = None


def kv_tool(
    name: str = "kv", *, scope: Literal["agent", "shared"] = "agent", **policy: Any
) -> Tool:
    """The key-value tool, named ``name``, with the given policy (see :class:`Tool`)."""

    async def run(request: KvRequest, ctx: ToolContext) -> KvResult:
        key = request.key if scope == "shared" else f"{ctx.agent}.{request.key}"
        try:
            bucket = await ensure_bucket(ctx.js, layout.TOOL_KV_BUCKET)
            if request.op == "get":
                try:
                    entry = await bucket.get(key)
                except KeyNotFoundError:
                    return KvResult(key=request.key, found=False)
                value = (entry.value or b"").decode("utf-8", "replace")
                return KvResult(key=request.key, found=True, value=value, revision=entry.revision)
            if request.op == "delete":
                await bucket.delete(key)
                return KvResult(key=request.key, found=False)
            assert request.value is not None
            data = request.value.encode()
            if request.expected_revision == 0:
                revision = await bucket.create(key, data)
            elif request.expected_revision is not None:
                revision = await bucket.update(key, data, last=request.expected_revision)
            else:
                revision = await bucket.put(key, data)
            return KvResult(key=request.key, found=True, value=request.value, revision=revision)
        except KeyWrongLastSequenceError as err:
            raise ToolFailure(
                f"key {request.key!r} is not at revision {request.expected_revision}"
            ) from err
        except (nats.errors.Error, StorageError) as err:
            raise ToolFailure(f"key-value store failed: {err}", retryable=True) from err

    policy.setdefault("description", "get, put or delete a string value by key")
    return Tool(name, KvRequest, KvResult, run, **policy)
