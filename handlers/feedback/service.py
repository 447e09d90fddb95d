"""The feedback service (``o-bus run feedback``): request/reply on ``o.feedback.<agent>``.

Every instance answers (a queue group shares the load). A valid feedback is recorded in
``O_FEEDBACK`` and the reply says where; invalid input gets an error reply with a stable code
and a dead letter, and the service carries on.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from pydantic_core import from_json, to_json

from o_bus.errors import OBusError
from o_bus.evolution.feedback.intake import FeedbackIntake
from o_bus.evolution.feedback.model import FeedbackAccepted
from o_bus.store import layout
from o_bus.store.dead_letter import DeadLetters
from o_bus.wire.reply import error_reply_from

__all__ = ["FeedbackService"]

log = logging.getLogger(__name__)
QUEUE = "o-feedback"


class FeedbackService:
    def __init__(self, nc: Client, js: JetStreamContext) -> None:
        self.nc = nc
        self.intake = FeedbackIntake(js)
        self.dead_letters = DeadLetters(js)
        self._sub: Subscription | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._sub = await self.nc.subscribe(layout.FEEDBACK_WILDCARD, queue=QUEUE, cb=self._on_msg)
        await self.nc.flush()  # the server knows the subscription before start() returns

    async def stop(self) -> None:
        if self._sub is not None:
            sub, self._sub = self._sub, None
            await sub.unsubscribe()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.dead_letters.flush()

    async def _on_msg(self, msg: Msg) -> None:
        # Never await in the callback: each message is handled in its own task.
        task = asyncio.create_task(self._handle(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, msg: Msg) -> None:
        agent = msg.subject.removeprefix(layout.FEEDBACK_PREFIX)
        reply: dict[str, Any]
        try:
            feedback, regression = await self.intake.accept(agent, msg.data)
            reply = FeedbackAccepted(
                agent=agent, request_id=feedback.request_id, seq=feedback.seq, regression=regression
            ).model_dump()
        except OBusError as err:
            request_id = _request_id_of(msg.data)
            self.dead_letters.reject(agent, request_id, err, msg.data, msg.headers)
            reply = error_reply_from(agent, request_id, err)
        except Exception as err:  # never let one message stop the service
            log.exception("feedback for %r failed", agent)
            wrapped = OBusError(f"feedback could not be recorded: {type(err).__name__}")
            self.dead_letters.reject(agent, None, wrapped, msg.data, msg.headers)
            reply = error_reply_from(agent, None, wrapped)
        if msg.reply:
            await self.nc.publish(msg.reply, to_json(reply))


def _request_id_of(body: bytes) -> str | None:
    """The request id of an invalid feedback body, if one can be read (for the dead letter)."""
    try:
        data = from_json(body)
    except ValueError:
        return None
    value = data.get("request_id") if isinstance(data, dict) else None
    return value[:256] if isinstance(value, str) and value else None
