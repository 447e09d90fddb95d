"""Execute one tool call under its policy: cache, rate limit, timeout, retries with backoff,
output validation and size limit. Never raises for a failed call: the failure is the result.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import to_json

from o_bus.tools.policy import Clock, ResultCache, Sleep, TokenBucket
from o_bus.tools.records import MAX_ERROR_MESSAGE, ToolError
from o_bus.tools.spec import Tool, ToolContext, ToolFailure
from o_bus.tools.validation import validation_summary

__all__ = ["Execution", "ToolExecutor"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Execution:
    """The outcome of a call: ``output`` (JSON data) or ``error``, and how it was obtained."""

    output: dict[str, Any] | None
    error: ToolError | None
    cached: bool
    attempts: int
    duration_ms: float

    @property
    def ok(self) -> bool:
        return self.error is None


def _error(code: Any, message: str, retryable: bool = False) -> ToolError:
    if len(message) > MAX_ERROR_MESSAGE:
        message = message[: MAX_ERROR_MESSAGE - 3] + "..."
    return ToolError(code=code, message=message, retryable=retryable)


class ToolExecutor:
    """Runs calls for one agent; keeps one rate limiter and one cache per tool."""

    def __init__(
        self,
        context: ToolContext,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.context = context
        self._clock, self._sleep = clock, sleep
        self._rng = rng or random.Random()
        self._buckets: dict[str, TokenBucket] = {}
        self.cache = ResultCache(clock)

    def _bucket(self, tool: Tool) -> TokenBucket | None:
        if tool.rate_limit is None:
            return None
        bucket = self._buckets.get(tool.name)
        if bucket is None:
            bucket = self._buckets[tool.name] = TokenBucket(
                tool.rate_limit, self._clock, self._sleep
            )
        return bucket

    async def execute(self, tool: Tool, data: dict[str, Any], call_id: str = "") -> Execution:
        """Run one call of ``tool`` on input ``data``; ``call_id`` goes into its context."""
        started = time.monotonic()
        context = replace(self.context, call_id=call_id) if call_id else self.context
        try:
            request = tool.input.model_validate(data)
        except ValidationError as err:
            summary, _ = validation_summary(err)
            return self._done(started, None, _error("invalid_input", summary), False, 0)
        key = (tool.name, json.dumps(request.model_dump(mode="json"), sort_keys=True))
        if tool.cache_ttl > 0:
            hit = self.cache.get(key)
            if hit is not None:
                return self._done(started, hit, None, True, 0)
        attempt = 0
        while True:
            attempt += 1
            output, error = await self._attempt(tool, request, context)
            if error is None:
                assert output is not None
                if tool.cache_ttl > 0:
                    self.cache.put(key, output, tool.cache_ttl)
                return self._done(started, output, None, False, attempt)
            if not error.retryable or attempt > tool.retries:
                return self._done(started, None, error, False, attempt)
            delay = tool.delay_before(attempt + 1, self._rng.random())
            log.info(
                "tool %s attempt %d failed (%s); retrying in %.2fs",
                tool.name,
                attempt,
                error.code,
                delay,
            )
            await self._sleep(delay)

    def _done(
        self,
        started: float,
        output: dict[str, Any] | None,
        error: ToolError | None,
        cached: bool,
        attempts: int,
    ) -> Execution:
        duration = (time.monotonic() - started) * 1000
        return Execution(output, error, cached, attempts, round(duration, 3))

    async def _attempt(
        self, tool: Tool, request: BaseModel, context: ToolContext
    ) -> tuple[dict[str, Any] | None, ToolError | None]:
        bucket = self._bucket(tool)
        if bucket is not None:
            await bucket.acquire()
        try:
            raw = await asyncio.wait_for(tool.run(request, context), tool.timeout)
        except TimeoutError:
            return None, _error("timeout", f"no result within {tool.timeout}s", True)
        except ToolFailure as failure:
            return None, _error(failure.tool_code, failure.message, failure.retryable)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # a bug or an unexpected failure in the tool: a result too
            log.warning("tool %s raised %s", tool.name, type(err).__name__, exc_info=True)
            return None, _error("tool_failed", f"{type(err).__name__}: {err}", True)
        return self._checked_output(tool, raw)

    def _checked_output(
        self, tool: Tool, raw: Any
    ) -> tuple[dict[str, Any] | None, ToolError | None]:
        try:
            data = raw.model_dump(mode="json") if isinstance(raw, BaseModel) else raw
            output = tool.output.model_validate(data).model_dump(mode="json")
            size = len(to_json(output))
        except ValidationError as err:
            summary, _ = validation_summary(err)
            return None, _error("invalid_output", f"tool {tool.name!r} returned {summary}")
        except Exception as err:  # unserialisable or hostile objects
            return None, _error(
                "invalid_output", f"tool {tool.name!r} returned unusable output: {err}"
            )
        if size > tool.max_output_bytes:
            return None, _error(
                "output_too_large",
                f"tool {tool.name!r} returned {size} bytes of JSON; "
                f"the limit is {tool.max_output_bytes}",
            )
        return output, None
