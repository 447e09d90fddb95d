"""Notices an agent's WAL consumer that has stopped delivering while requests wait for it.

The ordered consumer that feeds an agent is recreated by the NATS client when its heartbeats
stop (a server died, a stream changed leader). If that recreation fails at the wrong moment,
the client may never try again and the agent would sit idle with a growing WAL backlog. The
watchdog asks the store for the agent's last WAL record now and then, while the agent makes no
progress; a record that was already stored one check ago and is still not processed means the
consumer is stuck, and the watchdog has it started again from the first unprocessed record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Final

import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from o_bus.store import layout

__all__ = ["WalWatchdog", "last_wal_seq"]

log = logging.getLogger(__name__)

CHECK_EVERY: Final = 1.5  # seconds; three of the consumer's idle heartbeats


async def last_wal_seq(js: JetStreamContext, agent: str) -> int:
    """The WAL sequence of the agent's last accepted request (0: none), as the stream's
    leader knows it: a direct get may be answered by a replica that is behind (one catching
    up after losing its store, say), which would hide a stall. Raises ``nats.errors.Error``
    when the store does not answer."""
    try:
        msg = await js.get_last_msg(layout.WAL_STREAM, layout.wal_subject(agent))
    except NotFoundError:
        return 0
    return msg.seq or 0


class WalWatchdog:
    """Calls ``restart()`` when a WAL record stored before the previous check is still not
    processed and nothing was processed since.

    ``processed()`` is the last WAL sequence the agent took; ``consuming()`` says whether it
    is meant to be taking records now (not paused, not switching code); ``stored()`` is the
    last WAL sequence stored for the agent.
    """

    def __init__(
        self,
        agent: str,
        processed: Callable[[], int],
        consuming: Callable[[], bool],
        stored: Callable[[], Awaitable[int]],
        restart: Callable[[], Awaitable[None]],
        every: float = CHECK_EVERY,
    ) -> None:
        self.agent, self.every = agent, every
        self._processed, self._consuming = processed, consuming
        self._stored, self._restart = stored, restart
        self.restarts = 0
        self._previous = processed()  # what was processed at the previous check
        self._waiting = 0  # a stored record that was not yet processed at the previous check
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._previous, self._waiting = self._processed(), 0
        self._task = asyncio.create_task(self._run(), name=f"wal-watchdog-{self.agent}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            await self.check()

    async def check(self) -> bool:
        """One check (the watchdog runs one every ``every`` seconds); True if it restarted
        the consumer."""
        now = self._processed()
        if now != self._previous or not self._consuming():
            self._previous, self._waiting = now, 0
            return False
        if self._waiting > now:
            self.restarts += 1
            log.warning(
                "agent %s: its WAL consumer delivered nothing for %.1fs while request %d "
                "waited; consuming again from %d",
                self.agent,
                self.every,
                self._waiting,
                now + 1,
            )
            await self._restart()
            self._previous, self._waiting = self._processed(), 0
            return True
        try:
            stored = await self._stored()
        except nats.errors.Error as err:  # the store is down, or electing a leader
            log.debug("agent %s: cannot read the end of the WAL: %s", self.agent, err)
            self._waiting = 0
            return False
        self._waiting = stored if stored > now else 0
        return False
