"""Turn a feedback message into recorded feedback, or into a clear error.

Pure validation plus the two writes: the feedback itself, and (for a negative score) a
regression case naming the rated request.
"""

from __future__ import annotations

from nats.js import JetStreamContext
from pydantic import ValidationError

from o_bus.errors import ErrorCode, InvalidRequestError, NotFoundError
from o_bus.evolution.adversarial.cases import Failure, RegressionCase
from o_bus.evolution.adversarial.regression_log import RegressionLog
from o_bus.evolution.adversarial.request_lookup import wal_seqs_of
from o_bus.evolution.feedback.log import FeedbackLog
from o_bus.evolution.feedback.model import Feedback, FeedbackIn
from o_bus.store import layout
from o_bus.store.event_records import utc_now
from o_bus.store.registry import Registry

__all__ = ["FeedbackIntake", "parse_feedback"]


def parse_feedback(agent: str, body: bytes) -> FeedbackIn:
    """Validate a feedback body, or raise ``InvalidRequestError`` saying what is wrong."""
    layout.validate_agent_name(agent)
    try:
        return FeedbackIn.model_validate_json(body or b"{}")
    except ValidationError as err:
        errors = err.errors(include_url=False, include_context=False, include_input=False)
        if errors and errors[0]["type"] == "json_invalid":
            raise InvalidRequestError(
                ErrorCode.MALFORMED_REQUEST, f"feedback body is not valid JSON: {errors[0]['msg']}"
            ) from err
        summary = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(body)'}: {e['msg']}" for e in errors[:5]
        )
        raise InvalidRequestError(
            ErrorCode.INVALID_PAYLOAD, f"invalid feedback for {agent!r}: {summary}"
        ) from err


class FeedbackIntake:
    """Validate, record, and add negatively rated requests to the regression set."""

    def __init__(self, js: JetStreamContext) -> None:
        self.js = js
        self.registry = Registry(js)
        self.log = FeedbackLog(js)
        self.regressions = RegressionLog(js)

    async def accept(self, agent: str, body: bytes) -> tuple[Feedback, bool]:
        """(the recorded feedback, whether its request joined the regression set)."""
        given = parse_feedback(agent, body)
        try:
            await self.registry.get(agent)
        except NotFoundError:
            raise InvalidRequestError(
                ErrorCode.UNKNOWN_AGENT, f"no agent named {agent!r}: feedback not recorded"
            ) from None
        feedback = await self.log.record(Feedback(agent=agent, at=utc_now(), **given.model_dump()))
        if not feedback.negative:
            return feedback, False
        located = await wal_seqs_of(self.js, agent, {feedback.request_id})
        await self.regressions.add(
            RegressionCase(
                agent=agent,
                source="feedback",
                request_id=feedback.request_id,
                wal_seq=located.get(feedback.request_id),
                failure=Failure(
                    kind="feedback",
                    step=0,
                    detail="negative_score",
                    message=f"score {feedback.score:g}: {feedback.text or ''}"[:500],
                ),
                note=f"feedback seq {feedback.seq}",
            )
        )
        return feedback, True
