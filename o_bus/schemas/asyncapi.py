"""The AsyncAPI 3.0 document: channels and operations here, messages in :mod:`.messages`.

It is built here rather than by FastStream, whose generator describes its own subscribers: it
has no channel parameters, reply objects or header schemas, and cannot point at the files.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from importlib.metadata import version as package_version
from typing import Any, Final

from o_bus.agent.definition import AgentDefinition
from o_bus.store import layout
from o_bus.wire.codec import Encoding

from .evolution import evolution_asyncapi
from .messages import REPLY_TO_NOTE, agent_messages, bus_messages, ref
from .paths import ASYNCAPI_FILE, ID_PREFIX, state_path
from .queries import query_asyncapi
from .self_improvement import self_improvement_asyncapi
from .tools import tools_asyncapi_messages

__all__ = ["asyncapi"]

_AGENT_NAME_TEXT: Final = (
    "Agent instance name: one subject token of 1-64 characters A-Z a-z 0-9 _ -, starting "
    "alphanumeric"
)
_AGENT_PARAMETER: Final = (
    f"{_AGENT_NAME_TEXT}. Each instance runs one agent definition (x-o-bus-definitions)."
)


def _channel_messages(keys: Iterable[str]) -> dict[str, Any]:
    return {key: ref(f"#/components/messages/{key}") for key in keys}


def _operation_messages(channel: str, keys: Iterable[str]) -> list[dict[str, str]]:
    return [ref(f"#/channels/{channel}/messages/{key}") for key in keys]


def _per_agent(
    prefix: str,
    title: str,
    description: str,
    keys: Iterable[str],
    agent: Mapping[str, Any],
    stream: str | None = None,
) -> dict[str, Any]:
    """A channel with one subject per agent: ``<prefix>{agent}``."""
    channel = {
        "address": prefix + "{agent}",
        "title": title,
        "description": description,
        "parameters": {"agent": agent},
        "messages": _channel_messages(keys),
    }
    if stream is not None:
        channel["x-o-bus-stream"] = stream
    return channel


def _channels(
    agent: Mapping[str, Any], examples: list[str], commands: list[str], events: list[str]
) -> dict[str, Any]:
    return {
        "request": _per_agent(
            layout.REQUEST_PREFIX,
            "Requests",
            "Send a command to an agent as a NATS request (core NATS, not JetStream): binary "
            "mode (ce- headers, body = command data) or structured mode (one JSON CloudEvent).",
            commands,
            agent,
        ),
        "reply": {
            "address": None,
            "title": "Reply inbox",
            "description": REPLY_TO_NOTE,
            "messages": _channel_messages(["reply"]),
        },
        "events": _per_agent(
            layout.EVENT_PREFIX,
            "Events",
            "Every event of the agent, in order, in the agent's own JetStream stream "
            f"{layout.EVENTS_STREAM_PREFIX}{{agent}} (kept forever). Read with an ordered "
            "consumer filtered to the subject.",
            events,
            agent,
            layout.EVENTS_STREAM_PREFIX + "{agent}",
        ),
        "lifecycle": _per_agent(
            layout.LIFECYCLE_PREFIX,
            "Lifecycle",
            f"Lifecycle transitions, in JetStream stream {layout.SYSTEM_STREAM}.",
            ["lifecycleChanged"],
            agent,
            layout.SYSTEM_STREAM,
        ),
        "systemEvents": _per_agent(
            layout.SYSTEM_EVENT_PREFIX,
            "Supervision events",
            f"What the supervisor saw and did, in JetStream stream {layout.SYSTEM_STREAM}.",
            ["systemEvent"],
            agent,
            layout.SYSTEM_STREAM,
        ),
        "heartbeats": _per_agent(
            layout.HEARTBEAT_PREFIX,
            "Heartbeats",
            "Core NATS, not stored: every process of the agent (active and standby) publishes "
            "its state about 10 times a second. Subscribe to "
            f"{layout.HEARTBEAT_PREFIX}* for every agent.",
            ["heartbeat"],
            agent,
        ),
        "progress": _per_agent(
            layout.PROGRESS_PREFIX,
            "WAL progress",
            "Core NATS, not stored: the agent's active process says how far it has processed "
            "the WAL within 10 ms of it moving, and nothing while it does not; the splitter "
            "counts what it accepted for the agent as waiting until then. Subscribe to "
            f"{layout.PROGRESS_PREFIX}* for every agent.",
            ["progress"],
            agent,
        ),
        "supervision": {
            **_per_agent(
                f"$KV.{layout.SUPERVISOR_BUCKET}.",
                "Supervisor's records",
                f"KV bucket {layout.SUPERVISOR_BUCKET}, key {{agent}}: read it with a key-value "
                "get or watch. A deleted key is a message with header KV-Operation DEL or PURGE "
                "and an empty body.",
                ["agentSupervision"],
                agent,
                f"KV_{layout.SUPERVISOR_BUCKET}",
            ),
            "x-o-bus-kv": {"bucket": layout.SUPERVISOR_BUCKET, "key": "{agent}"},
        },
        "deadLetters": {
            "address": layout.DLQ_PREFIX + "{agent}.{hash}",
            "title": "Dead letters",
            "description": (
                f"Rejected requests, in JetStream stream {layout.DLQ_STREAM}; the last message on "
                "a subject is the rejection of that request id."
            ),
            "parameters": {
                "agent": {
                    "description": (
                        f"{_AGENT_NAME_TEXT}, or _unrouted when the request named no "
                        "registered agent."
                    ),
                    "examples": [*examples, "_unrouted"],
                },
                "hash": {
                    "description": (
                        "First 24 hex digits (lower case) of SHA-256 of the request's ce-id in "
                        "UTF-8 (of the empty string when it had none)."
                    ),
                },
            },
            "messages": _channel_messages(["deadLetter"]),
            "x-o-bus-stream": layout.DLQ_STREAM,
        },
    }


def _send(
    title: str, channel: str, keys: Iterable[str], summary: str | None = None
) -> dict[str, Any]:
    """An operation by which the bus publishes ``keys`` on ``channel``."""
    operation: dict[str, Any] = {
        "action": "send",
        "title": title,
        "channel": ref(f"#/channels/{channel}"),
        "messages": _operation_messages(channel, keys),
    }
    if summary is not None:
        operation["summary"] = summary
    return operation


def _operations(commands: list[str], events: list[str]) -> dict[str, Any]:
    return {
        "handleRequest": {
            "action": "receive",
            "title": "Handle a request",
            "summary": "The bus receives a command and replies to the request's reply inbox.",
            "channel": ref("#/channels/request"),
            "messages": _operation_messages("request", commands),
            "reply": {
                "channel": ref("#/channels/reply"),
                "messages": _operation_messages("reply", ["reply"]),
                "x-o-bus-reply-to": REPLY_TO_NOTE,
            },
        },
        "publishEvents": _send(
            "Publish events",
            "events",
            events,
            "Events are appended to the agent's log after each accepted command.",
        ),
        "publishLifecycle": _send("Publish lifecycle changes", "lifecycle", ["lifecycleChanged"]),
        "publishDeadLetters": _send("Publish dead letters", "deadLetters", ["deadLetter"]),
        "publishSystemEvents": _send("Publish supervision events", "systemEvents", ["systemEvent"]),
        "publishHeartbeats": _send("Publish heartbeats", "heartbeats", ["heartbeat"]),
        "publishProgress": _send("Publish WAL progress", "progress", ["progress"]),
        "publishSupervision": _send(
            "Publish the supervisor's records", "supervision", ["agentSupervision"]
        ),
    }


def asyncapi(definitions: Sequence[AgentDefinition[Any]]) -> dict[str, Any]:
    """The whole AsyncAPI document for ``definitions``."""
    examples = [d.name for d in definitions]
    agent = {"description": _AGENT_PARAMETER, "examples": examples}
    commands, events, messages = agent_messages(definitions)
    commands.append("command.structured")
    messages.update(bus_messages())
    query_channels, query_operations, query_messages = query_asyncapi(list(definitions), agent)
    messages.update(query_messages)
    evolution_channels, evolution_operations, evolution_messages = evolution_asyncapi(agent)
    messages.update(evolution_messages)
    self_channels, self_operations, self_messages = self_improvement_asyncapi(agent)
    messages.update(self_messages)
    messages.update(tools_asyncapi_messages())
    return {
        "asyncapi": "3.0.0",
        "id": ID_PREFIX + ASYNCAPI_FILE,
        "info": {
            "title": "o_bus wire contract",
            "version": package_version("o-bus"),
            "description": (
                "Requests to agents, their replies, and what clients can read: streams, core "
                "NATS subjects and a key-value bucket, on NATS JetStream. Payloads and headers "
                "point at the JSON Schema files beside this document (draft 2020-12, using only "
                "keywords draft-07 tools read too). See README.md."
            ),
        },
        "defaultContentType": Encoding.JSON.value,
        "channels": {
            **_channels(agent, examples, commands, events),
            **query_channels,
            **evolution_channels,
            **self_channels,
        },
        "operations": {
            **_operations(commands, events),
            **query_operations,
            **evolution_operations,
            **self_operations,
        },
        "components": {"messages": messages},
        "x-o-bus-definitions": {
            d.name: {
                "version": d.version,
                "description": d.description,
                "stateSchema": f"./{state_path(d.name)}",
                "stateSchemaVersion": d.state_schema_version,
            }
            for d in definitions
        },
    }
