"""The feedback log: accepted feedback in the ``O_FEEDBACK`` stream, one subject per agent.

Feedback is kept out of the agent's own event stream on purpose: it changes no state, so the
agent's sequence numbers, folds and replays stay exactly what they were without it.
"""

from __future__ import annotations

import hashlib

import nats.errors
from nats.js import JetStreamContext

from o_bus.errors import StorageError
from o_bus.evolution.feedback.model import Feedback
from o_bus.store import layout
from o_bus.store.subject_reader import read_subject
from o_bus.wire.headers import CE_REQUESTID, NATS_MSG_ID

__all__ = ["FeedbackLog"]


class FeedbackLog:
    """Append and read the feedback of an agent."""

    def __init__(self, js: JetStreamContext) -> None:
        self.js = js

    async def record(self, feedback: Feedback) -> Feedback:
        """Store ``feedback``; the same feedback sent twice is stored once (message id)."""
        body = feedback.model_dump_json(exclude={"seq", "at"}).encode()
        msg_id = hashlib.sha256(body).hexdigest()
        try:
            ack = await self.js.publish(
                layout.feedback_record_subject(feedback.agent),
                feedback.model_dump_json(exclude={"seq"}).encode(),
                headers={NATS_MSG_ID: msg_id, CE_REQUESTID: feedback.request_id},
                timeout=5.0,
            )
        except nats.errors.Error as err:
            raise StorageError(f"cannot record feedback for {feedback.agent!r}") from err
        return feedback.model_copy(update={"seq": ack.seq})

    async def read(self, agent: str, *, after_seq: int = 0) -> list[Feedback]:
        """Every feedback of ``agent`` after stream position ``after_seq``, oldest first."""
        found = await read_subject(
            self.js, layout.FEEDBACK_STREAM, layout.feedback_record_subject(agent), after_seq
        )
        return [
            Feedback.model_validate_json(data).model_copy(update={"seq": seq})
            for seq, _, data in found
        ]

    async def by_request(self, agent: str) -> dict[str, Feedback]:
        """The latest feedback of each of ``agent``'s rated requests."""
        return {fb.request_id: fb for fb in await self.read(agent)}
