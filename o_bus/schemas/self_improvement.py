"""Schema files of feedback, regression sets and self-trigger records, and their channels."""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel

from o_bus.evolution.adversarial.cases import RegressionCase
from o_bus.evolution.feedback.model import Feedback, FeedbackAccepted, FeedbackIn
from o_bus.evolution.triggers.records import TriggerRecord
from o_bus.store import layout

from .build import document, serialized
from .messages import ref

__all__ = [
    "SELF_IMPROVEMENT_ABOUT",
    "SELF_IMPROVEMENT_FILES",
    "self_improvement_asyncapi",
    "self_improvement_guide",
    "self_improvement_schemas",
]

FEEDBACK_REQUEST: Final = "evolution/feedback-request.schema.json"
FEEDBACK_REPLY: Final = "evolution/feedback-reply.schema.json"
FEEDBACK: Final = "evolution/feedback.schema.json"
REGRESSION_CASE: Final = "evolution/regression-case.schema.json"
TRIGGER_RECORD: Final = "evolution/trigger-record.schema.json"
SELF_IMPROVEMENT_FILES: Final = (
    FEEDBACK_REQUEST,
    FEEDBACK_REPLY,
    FEEDBACK,
    REGRESSION_CASE,
    TRIGGER_RECORD,
)


def self_improvement_schemas() -> dict[str, dict[str, Any]]:
    described: dict[str, tuple[type[BaseModel], str, bool]] = {
        FEEDBACK_REQUEST: (
            FeedbackIn,
            f"Feedback on one request of an agent: JSON body of a core NATS request on "
            f"{layout.FEEDBACK_PREFIX}<agent>. score is -1 (bad) to 1 (good); a score below 0 "
            "adds the request to the agent's regression set.",
            False,
        ),
        FEEDBACK_REPLY: (
            FeedbackAccepted,
            "Reply to an accepted feedback. A refused one (bad body, unknown agent) gets the "
            "bus's ErrorReply (reply.schema.json) and a dead letter.",
            True,
        ),
        FEEDBACK: (
            Feedback,
            f"An accepted feedback, JSON on {layout.FEEDBACK_RECORD_PREFIX}<agent> in stream "
            f"{layout.FEEDBACK_STREAM} (no age limit). seq is not stored: it is the message's "
            "stream sequence.",
            True,
        ),
        REGRESSION_CASE: (
            RegressionCase,
            f"A regression case, JSON on {layout.REGRESSION_PREFIX}<agent> in stream "
            f"{layout.REGRESSION_STREAM} (no age limit): requests every later candidate must "
            "run without failure. source red: found by `o-bus evolve red`; source feedback: a "
            "negatively rated request (steps filled in from the WAL when read).",
            True,
        ),
        TRIGGER_RECORD: (
            TriggerRecord,
            f"A self-trigger record, JSON on {layout.TRIGGER_EVENT_PREFIX}<agent> in stream "
            f"{layout.SYSTEM_STREAM}: a firing with its reason, a pause or resume by an "
            "operator, a search started or finished (with what it spent).",
            True,
        ),
    }
    return {
        path: document(
            path,
            serialized(model) if as_sent else model.model_json_schema(mode="validation"),
            description=description,
        )
        for path, (model, description, as_sent) in described.items()
    }


SELF_IMPROVEMENT_ABOUT: Final = {
    FEEDBACK_REQUEST: f"Body of feedback on `{layout.FEEDBACK_PREFIX}<agent>` (core NATS).",
    FEEDBACK_REPLY: "Reply to an accepted feedback.",
    FEEDBACK: f"Body of a feedback record in `{layout.FEEDBACK_STREAM}`.",
    REGRESSION_CASE: f"Body of a regression case in `{layout.REGRESSION_STREAM}`.",
    TRIGGER_RECORD: f"Body of a self-trigger record on `{layout.TRIGGER_EVENT_PREFIX}<agent>`.",
}


def self_improvement_guide() -> list[str]:
    """The guide's section on feedback, regression sets and self-triggers."""
    return [
        "## Feedback, regression sets and self-triggers",
        "",
        f"- **Feedback**: send a [`FeedbackIn`]({FEEDBACK_REQUEST}) as a core NATS request",
        f"  to `{layout.FEEDBACK_PREFIX}<agent>`; the reply is a",
        f"  [`FeedbackAccepted`]({FEEDBACK_REPLY}) or an `ErrorReply` (and a dead letter).",
        "  Accepted feedback is a",
        f"  [`Feedback`]({FEEDBACK}) on `{layout.FEEDBACK_RECORD_PREFIX}<agent>` in",
        f"  `{layout.FEEDBACK_STREAM}`.",
        f"- **Regression sets**: [`RegressionCase`]({REGRESSION_CASE}) records on",
        f"  `{layout.REGRESSION_PREFIX}<agent>` in `{layout.REGRESSION_STREAM}`.",
        f"- **Self-triggers**: [`TriggerRecord`]({TRIGGER_RECORD}) records on",
        f"  `{layout.TRIGGER_EVENT_PREFIX}<agent>` in `{layout.SYSTEM_STREAM}`.",
    ]


# channel key -> (address, title, description, message key, schema file, stream, action)
_CHANNELS: Final = {
    "feedback": (
        layout.FEEDBACK_PREFIX + "{agent}",
        "Feedback",
        "Core NATS request/reply: feedback on one request of the agent.",
        "feedbackIn",
        FEEDBACK_REQUEST,
        None,
        "receive",
    ),
    "feedbackRecords": (
        layout.FEEDBACK_RECORD_PREFIX + "{agent}",
        "Feedback records",
        f"Accepted feedback, in JetStream stream {layout.FEEDBACK_STREAM}.",
        "feedback",
        FEEDBACK,
        layout.FEEDBACK_STREAM,
        "send",
    ),
    "regressionCases": (
        layout.REGRESSION_PREFIX + "{agent}",
        "Regression cases",
        f"The agent's regression set, in JetStream stream {layout.REGRESSION_STREAM}.",
        "regressionCase",
        REGRESSION_CASE,
        layout.REGRESSION_STREAM,
        "send",
    ),
    "triggerRecords": (
        layout.TRIGGER_EVENT_PREFIX + "{agent}",
        "Self-trigger records",
        f"Firings, pauses and searches of the agent's self-triggers, in {layout.SYSTEM_STREAM}.",
        "triggerRecord",
        TRIGGER_RECORD,
        layout.SYSTEM_STREAM,
        "send",
    ),
}


def self_improvement_asyncapi(
    agent: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(channels, operations, messages) of feedback, regression sets and trigger records."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {
        "feedbackAccepted": {
            "name": "feedbackAccepted",
            "title": "Feedback accepted",
            "summary": SELF_IMPROVEMENT_ABOUT[FEEDBACK_REPLY],
            "contentType": "application/json",
            "payload": ref(f"./{FEEDBACK_REPLY}"),
        }
    }
    for channel, (address, title, description, key, path, store, action) in _CHANNELS.items():
        channels[channel] = {
            "address": address,
            "title": title,
            "description": description,
            "parameters": {"agent": agent},
            "messages": {key: ref(f"#/components/messages/{key}")},
        }
        if store is not None:
            channels[channel]["x-o-bus-stream"] = store
        messages[key] = {
            "name": key,
            "title": title,
            "summary": SELF_IMPROVEMENT_ABOUT[path],
            "contentType": "application/json",
            "payload": ref(f"./{path}"),
        }
        operation: dict[str, Any] = {
            "action": action,
            "title": title,
            "channel": ref(f"#/channels/{channel}"),
            "messages": [ref(f"#/channels/{channel}/messages/{key}")],
        }
        if channel == "feedback":
            operation["reply"] = {
                "channel": ref("#/channels/feedbackReply"),
                "messages": [
                    ref("#/channels/feedbackReply/messages/feedbackAccepted"),
                    ref("#/channels/feedbackReply/messages/reply"),
                ],
            }
        operations[f"{action}{channel[0].upper()}{channel[1:]}"] = operation
    channels["feedbackReply"] = {
        "address": None,
        "title": "Feedback reply inbox",
        "description": "The feedback request's reply subject: FeedbackAccepted, or ErrorReply.",
        "messages": {
            "feedbackAccepted": ref("#/components/messages/feedbackAccepted"),
            "reply": ref("#/components/messages/reply"),
        },
    }
    return channels, operations, messages
