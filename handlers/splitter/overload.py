"""What the splitter does when it cannot take a request: answer ``overloaded``, count it, say
so in the log (a summary at most every few seconds, never a line per request).

Refused requests are not dead-lettered: nothing was accepted, the sender is told to re-send,
and a flood would otherwise flood the dead-letter stream too. A request sent without a reply
subject (fire-and-forget) cannot be answered; it is counted as dropped.

Requests arrive on one subscription whose queue is bounded on purpose. When a flood outruns
even the refusals, the NATS client drops what does not fit and reports each drop as a slow
consumer event, with the message's reply subject: those are answered ``overloaded`` too.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, Final

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic_core import from_json

from o_bus.errors import OverloadedError
from o_bus.runtime.progress import read_progress
from o_bus.store import layout
from o_bus.wire.codec import Encoding
from o_bus.wire.reply import encode_reply, error_reply_from

__all__ = ["Refusals", "follow_progress", "overloaded", "wal_is_full"]

log = logging.getLogger(__name__)
_REPORT_EVERY: Final = 5.0
_HB_PREFIX_LEN: Final = len(layout.HEARTBEAT_PREFIX)
_PROGRESS_PREFIX_LEN: Final = len(layout.PROGRESS_PREFIX)

_DROPPED: Final = {s: f"{s}/dropped" for s in ("bus", "wal", "agent", "sender", "queue")}
_MEANING: Final = {
    "bus": "the splitter has {limit} requests waiting for the WAL",
    "wal": "the WAL is full ({limit})",
    "agent": "agent {agent!r} has {limit} accepted requests still to process",
    "sender": "sender {sender!r} has its share ({limit}) of the requests waiting",
    "queue": "the splitter's intake queue is full ({limit} requests)",
}


def wal_is_full(error: str | None) -> bool:
    """The append was refused because the WAL reached its size limit (discard: new)."""
    return bool(error) and "maximum" in str(error) and "exceeded" in str(error)


def overloaded(scope: str, limit: int | str, agent: str = "", sender: str = "") -> OverloadedError:
    """The error a refused request is answered with."""
    what = _MEANING[scope].format(limit=limit, agent=agent, sender=sender[:64])
    return OverloadedError(
        f"overloaded: {what}; nothing was stored, re-send later with the same id",
        details={"scope": scope, "limit": limit},
    )


class Refusals:
    """Answers refused requests, counts them and reports the counts in the log."""

    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self.total: Counter[str] = Counter()  # "<scope>" answered, "<scope>/dropped" not
        self._since: Counter[str] = Counter()
        self._reported = time.monotonic()
        self._unreported = 0

    def dropped(self, scope: str, count: int = 1) -> None:
        """Count ``count`` refused requests that were sent without a reply subject."""
        key = _DROPPED[scope]
        self.total[key] += count
        self._since[key] += count
        self._unreported += count
        if self._unreported >= 1024:  # a flood: look at the clock now and then only
            self._unreported = 0
            self.report()

    async def refuse(
        self,
        agent: str,
        request_id: str | None,
        reply: str | None,
        err: OverloadedError,
        encoding: Encoding = Encoding.JSON,
    ) -> None:
        if not reply:
            self.dropped(str(err.details["scope"]))
            return
        key = str(err.details["scope"])
        self.total[key] += 1
        self._since[key] += 1
        if reply:
            data, headers = encode_reply(error_reply_from(agent, request_id, err), encoding)
            try:
                await self.nc.publish(reply, data, headers=headers)
            except nats.errors.Error:
                log.exception("could not answer a refused request")
        self.report()

    def report(self, force: bool = False) -> None:
        now = time.monotonic()
        if self._since and (force or now - self._reported >= _REPORT_EVERY):
            counts = ", ".join(f"{k} {v}" for k, v in sorted(self._since.items()))
            log.warning(
                "overloaded: refused %d request(s) in %.1fs (%s)",
                sum(self._since.values()),
                now - self._reported,
                counts,
            )
            self._since.clear()
            self._reported = now

    def on_slow_consumer(
        self,
        nc: Client,
        sub: Callable[[], Subscription | None],
        limit: int,
        on_trouble: Callable[[], None] = lambda: None,
    ) -> None:
        """Answer the requests the NATS client drops from ``sub()``'s full queue (``limit``
        messages); call ``on_trouble()`` when the connection was lost or a background
        request of the client timed out; every other error goes to the connection's own
        error callback too."""
        # nats-py has one error callback per connection, set at connect: chain to it.
        previous: Callable[[Exception], Awaitable[None]] = nc._error_cb

        async def on_error(err: Exception) -> None:
            if isinstance(err, nats.errors.SlowConsumerError) and err.sub is sub():
                agent = err.subject[len(layout.REQUEST_PREFIX) :]
                await self.refuse(agent, None, err.reply or None, overloaded("queue", limit))
                return
            if isinstance(err, nats.errors.TimeoutError):
                # A consumer the client recreates in the background (a bucket watch after
                # missed heartbeats) could not be: nats-py does not try again.
                on_trouble()
            if isinstance(err, nats.errors.StaleConnectionError | ConnectionError):
                on_trouble()
                # Most often the server closed a splitter that read too slowly: what it held
                # for this splitter is lost, and only the server's log says how much.
                self.total["connection_lost"] += 1
                log.error(
                    "the connection to NATS was lost (%s); if the server's log says 'Slow "
                    "Consumer Detected', requests it held for this splitter were dropped "
                    "unanswered: their senders must re-send after their timeout",
                    err,
                )
            await previous(err)

        nc._error_cb = on_error


async def follow_progress(
    nc: Client, processed: Callable[[str, int], None]
) -> tuple[Subscription, Subscription]:
    """Call ``processed(agent, wal_seq)`` for each progress message of an agent's active
    process, and for each of its heartbeats (which say it too, less often)."""

    async def on_progress(msg: Msg) -> None:
        wal_seq = read_progress(msg.data)
        if wal_seq is not None:
            processed(msg.subject[_PROGRESS_PREFIX_LEN:], wal_seq)

    async def on_beat(msg: Msg) -> None:
        try:
            beat: Any = from_json(msg.data)
            if beat.get("role") == "active":
                processed(msg.subject[_HB_PREFIX_LEN:], int(beat["wal_seq"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            return

    return (
        await nc.subscribe(layout.progress_subject("*"), cb=on_progress),
        await nc.subscribe(layout.heartbeat_subject("*"), cb=on_beat),
    )
