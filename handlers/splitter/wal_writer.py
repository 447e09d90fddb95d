"""Pipelined WAL appends for the splitter, lean on the common path.

Every append carries a reply subject on one wildcard subscription. An acknowledgement is only
parsed in full when it reports an error or a duplicate; of a plain success only the stream
sequence is read. This costs a fraction of a generic publish-with-future per message, which
matters at the entry point of every request. The writer never waits: the caller checks
``full`` first and refuses the request when it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from typing import Any, Final

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic_core import from_json

from o_bus.wire.headers import NATS_STATUS

__all__ = ["AckProblem", "WalWriter"]

# An ack that needs attention contains one of these; a success is {"stream":..,"seq":..}.
_ATTENTION: Final = (b'"error"', b'"duplicate"')
_SWEEP_EVERY: Final = 1.0
_SEQ: Final = re.compile(rb'"seq":(\d+)')


class AckProblem:
    """What went wrong with one append: an error description, or a duplicate of ``seq``."""

    __slots__ = ("duplicate_of", "error")

    def __init__(self, error: str | None = None, duplicate_of: int = 0) -> None:
        self.error = error
        self.duplicate_of = duplicate_of


Handler = Callable[[Any, AckProblem], None]
StoredHandler = Callable[[Any, int], None]


def _ignore(context: Any, seq: int) -> None:
    return None


class WalWriter:
    def __init__(
        self,
        nc: Client,
        on_problem: Handler,
        *,
        on_stored: StoredHandler = _ignore,
        max_pending: int = 8192,
        ack_timeout: float = 10.0,
    ) -> None:
        self.nc, self.on_problem, self.on_stored = nc, on_problem, on_stored
        self.max_pending, self.ack_timeout = max_pending, ack_timeout
        self._prefix = ""
        self._next = 0
        self._waiting: dict[str, tuple[Any, float]] = {}
        self._drained = asyncio.Event()  # set when the last pending append is acknowledged
        self._sub: Subscription | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._prefix = self.nc.new_inbox() + "."
        self._sub = await self.nc.subscribe(self._prefix + "*", cb=self._on_ack)
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="wal-ack-sweeper")

    async def stop(self, timeout: float = 5.0) -> None:
        if self._waiting:
            self._drained.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), timeout)
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        if self._sub is not None:
            await self._sub.unsubscribe()

    @property
    def pending(self) -> int:
        return len(self._waiting)

    @property
    def full(self) -> bool:
        """``max_pending`` appends wait for their acknowledgement: take no more for now."""
        return len(self._waiting) >= self.max_pending

    async def append(
        self, subject: str, body: bytes, headers: dict[str, str], context: Any
    ) -> None:
        """Publish one WAL record; then ``on_stored(context, seq)`` or, if it fails,
        ``on_problem(context, problem)`` is called."""
        self._next += 1
        token = str(self._next)
        self._waiting[token] = (context, time.monotonic())
        await self.nc.publish(subject, body, reply=self._prefix + token, headers=headers)

    async def _on_ack(self, msg: Msg) -> None:
        entry = self._waiting.pop(msg.subject[len(self._prefix) :], None)
        if not self._waiting:
            self._drained.set()
        if entry is None:
            return
        data = msg.data
        status = msg.headers.get(NATS_STATUS) if msg.headers else None
        if status:  # e.g. 503: no stream listens on the subject
            self.on_problem(entry[0], AckProblem(f"JetStream status {status}"))
        elif any(marker in data for marker in _ATTENTION):
            ack = from_json(data)
            error = ack.get("error")
            if error:
                self.on_problem(entry[0], AckProblem(str(error.get("description", error))))
            elif ack.get("duplicate"):
                self.on_problem(entry[0], AckProblem(duplicate_of=int(ack.get("seq", 0))))
            else:
                self.on_stored(entry[0], int(ack.get("seq", 0)))
        else:
            found = _SEQ.search(data)
            self.on_stored(entry[0], int(found[1]) if found else 0)

    async def _sweep_forever(self) -> None:
        # On a timer, not on the next append: after a reconnect lost some acknowledgements
        # there may be no next append, and what waits for them must still be released.
        while True:
            await asyncio.sleep(_SWEEP_EVERY)
            if self._waiting:
                self._sweep(time.monotonic())

    def _sweep(self, now: float) -> None:
        """Forget appends whose acknowledgement never came (their clients time out)."""
        stale = [t for t, (_, at) in self._waiting.items() if now - at > self.ack_timeout]
        for token in stale:
            context, _ = self._waiting.pop(token)
            self.on_problem(context, AckProblem("no acknowledgement from JetStream"))
