"""``schemas/README.md``: the guide for clients in other languages, from the same sources."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, get_args

from o_bus.agent.definition import AgentDefinition
from o_bus.config import StorageConfig
from o_bus.errors import ErrorCode
from o_bus.store import layout
from o_bus.store.dead_letter import KEEP_BYTES
from o_bus.supervision.records import SystemEvent
from o_bus.wire.codec import CLOUDEVENTS_JSON

from .error_codes import ERROR_MEANINGS
from .evolution import EVOLUTION_ABOUT, evolution_guide
from .go_examples import GO_EVENTS, GO_REQUEST
from .health import (
    ALL_AGENTS_FIELDS,
    HEALTH_PREFIX,
    HEALTH_SUBJECT,
    LATENCY_FIELDS,
    PROCESS_FIELDS,
    SUMMARY_FIELDS,
)
from .paths import (
    AGENT_SUPERVISION,
    ASYNCAPI_FILE,
    DEAD_LETTER_HEADERS,
    EVENT_HEADERS,
    HEARTBEAT,
    ID_PREFIX,
    LIFECYCLE_CHANGED,
    README_FILE,
    REPLY,
    REPLY_HEADERS,
    REQUEST_BINARY_HEADERS,
    REQUEST_STRUCTURED,
    SYSTEM_EVENT,
    command_path,
    event_path,
    state_path,
)
from .queries import QUERY_REPLY, QUERY_REQUEST, query_path
from .self_improvement import SELF_IMPROVEMENT_ABOUT, self_improvement_guide
from .tools import TOOLS_ABOUT

__all__ = ["readme"]

_ABOUT: Mapping[str, str] = {
    ASYNCAPI_FILE: "AsyncAPI 3.0 document: channels, operations, messages.",
    REQUEST_BINARY_HEADERS: "Headers of a binary-mode request.",
    REQUEST_STRUCTURED: "Body of a structured-mode request (one JSON CloudEvent).",
    REPLY_HEADERS: "Headers of a reply.",
    REPLY: "Reply body: `OkReply` or `ErrorReply`, with the error codes.",
    EVENT_HEADERS: "Headers of an event in `O_EVT_<agent>`.",
    DEAD_LETTER_HEADERS: "Headers of a dead letter in `O_DLQ`.",
    LIFECYCLE_CHANGED: "Body of a lifecycle message in `O_SYSTEM`.",
    SYSTEM_EVENT: f"Body of a supervision event in `{layout.SYSTEM_STREAM}`.",
    HEARTBEAT: f"Body of a heartbeat on `{layout.HEARTBEAT_PREFIX}<agent>` (not stored).",
    AGENT_SUPERVISION: f"Value of a key in KV bucket `{layout.SUPERVISOR_BUCKET}`.",
    README_FILE: "This guide.",
    QUERY_REQUEST: f"Body of a query on `{layout.QUERY_PREFIX}<agent>` (core NATS, not stored).",
    QUERY_REPLY: "Reply to a query: `QueryOkReply` or `QueryErrorReply`.",
    **EVOLUTION_ABOUT,
    **SELF_IMPROVEMENT_ABOUT,
    **TOOLS_ABOUT,
}


def _cell(text: str) -> str:
    """Text for a Markdown table cell: no column breaks, no ``<...>`` read as HTML."""
    return text.replace("|", "\\|").replace("<", "\\<")


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "") -> list[str]:
    """A Markdown table; ``rows`` are cells as they are (see :func:`_cell`)."""
    return [
        f"{indent}| {' | '.join(row)} |"
        for row in (head, ["---"] * len(head), *rows)  # separator row: | --- | --- |
    ]


def _header_table(schema: Mapping[str, Any], column: str, indent: str = "") -> list[str]:
    """The headers a header schema describes: name, whether required, meaning."""
    required = set(schema.get("required", ()))
    rows = [
        [f"`{name}`", "yes" if name in required else "no", _cell(prop.get("description", ""))]
        for name, prop in schema["properties"].items()
    ]
    return _table(["header", column, "meaning"], rows, indent)


def _file_rows(definitions: Sequence[AgentDefinition[Any]], paths: Sequence[str]) -> list[str]:
    about = dict(_ABOUT)
    for d in definitions:
        for command in d.command_types:
            about[command_path(d.name, command)] = f"Data of command `{command}`."
        for event_type, cls in d.event_types.items():
            about[event_path(d.name, event_type, cls.event_version)] = (
                f"Data of event `{event_type}` version {cls.event_version}."
            )
        about[state_path(d.name)] = "State of the agent (snapshots, status)."
        for query in d.queries.types:
            about[query_path(d.name, query)] = f"Params of query `{query}`."
    rows = [[f"[`{path}`]({path})", about.get(path, "")] for path in sorted(paths)]
    return _table(["file", "what"], rows)


def _introduction(definitions: Sequence[AgentDefinition[Any]], paths: Sequence[str]) -> list[str]:
    return [
        "# o_bus wire contract",
        "",
        "Everything a client in any language needs to talk to o_bus agents over NATS. The files",
        "here are generated from the Python models by `python -m o_bus.schemas`; do not edit",
        "them. `python -m o_bus.schemas --check` (part of the test suite) fails when one is out",
        "of date. Schemas are JSON Schema draft 2020-12 using only keywords that draft-07 tools",
        f"read as well; each `$id` is `{ID_PREFIX}<path>`. An agent *instance* (the `<agent>` in",
        "subjects) runs one agent *definition*; the per-agent schemas are per definition.",
        "",
        *_file_rows(definitions, paths),
    ]


def _requests(binary: Mapping[str, Any]) -> list[str]:
    req = layout.REQUEST_PREFIX
    return [
        "## Sending a request",
        "",
        "A request to agent `A` is a core NATS request (publish with a reply inbox, wait for one",
        f"message) on `{req}A`. Header names are case-sensitive.",
        "",
        "### Binary mode",
        "",
        "1. Choose a request id, e.g. a UUID, and keep it until you have the reply: it is the",
        "   idempotency key.",
        "2. Encode the command data as JSON (or msgpack) following",
        "   `agents/<definition>/commands/<command>.schema.json`.",
        f"3. Send it as a request on `{req}<agent>` with these headers",
        f"   ([schema]({REQUEST_BINARY_HEADERS})); other headers are ignored:",
        "",
        *_header_table(binary, "required", "   "),
        "",
        f"4. Wait for the reply. Its body ([schema]({REPLY})) is in the request's",
        "   encoding and header `O-Status` is `ok` or `error`. On a timeout, send the same request",
        "   again with the same `ce-id`: within the duplicate window",
        f"   ({StorageConfig().duplicate_window:g} s by default) a request that already ran is not",
        '   applied again and you get its original reply with `"duplicate": true`.',
        "",
        "### Structured mode",
        "",
        f"Set `Content-Type: {CLOUDEVENTS_JSON}` and send one JSON CloudEvent as the body",
        f"([schema]({REQUEST_STRUCTURED})); the reply is always JSON:",
        "",
        "```json",
        '{"specversion": "1.0", "id": "invoice-4711-add", "type": "increment",',
        ' "source": "billing/invoicer", "data": {"by": 5}}',
        "```",
        "",
        'For msgpack data, set `"datacontenttype": "application/msgpack"` and put the base64',
        "of the msgpack bytes in `data_base64` instead of `data`.",
        "",
        "### Replies",
        "",
        "```json",
        '{"ok": true, "agent": "counter", "request_id": "invoice-4711-add", "seq": 7,',
        ' "events": [{"seq": 7, "type": "incremented", "version": 1, "data": {"by": 5}}],',
        ' "duplicate": false}',
        '{"ok": false, "agent": "counter", "request_id": "invoice-4711-add",',
        ' "error": {"code": "invalid_payload", "message": "...", "details": {"errors": []}}}',
        "```",
        "",
        "### Go, with the official client (`github.com/nats-io/nats.go`)",
        "",
        GO_REQUEST,
    ]


def _events(events: Mapping[str, Any]) -> list[str]:
    evt = layout.EVENT_PREFIX
    return [
        "## Reading events",
        "",
        f"Each agent's events are on subject `{evt}<agent>` of the agent's own JetStream stream",
        f"`{layout.EVENTS_STREAM_PREFIX}<agent>`, kept forever, in order. Create an *ordered",
        "consumer* on that stream filtered to the subject, delivering from a start sequence. The",
        "start sequence is the JetStream *stream* sequence (the stream also holds the agent's",
        "outcome records and fences): remember the stream sequence of the last event you",
        "handled (message metadata) and start after it.",
        "`ce-sequence` is the agent's own 1-based, gap-free position. The body is the JSON event",
        "data, following `agents/<definition>/events/<ce-type>.v<ce-eventversion>.schema.json`.",
        "Only the current version of each event type has a file; older versions stay in the log",
        "as they were written, so check `ce-eventversion`.",
        "",
        f"Event headers ([schema]({EVENT_HEADERS})):",
        "",
        *_header_table(events, "always"),
        "",
        GO_EVENTS,
    ]


def _other_streams(dead: Mapping[str, Any]) -> list[str]:
    life, dlq = layout.LIFECYCLE_PREFIX, layout.DLQ_PREFIX
    return [
        "## Other streams",
        "",
        f"- **Lifecycle**: `{life}<agent>` in `{layout.SYSTEM_STREAM}`, one JSON",
        f"  [`LifecycleChanged`]({LIFECYCLE_CHANGED}) per transition.",
        f"- **Dead letters**: `{dlq}<agent>.<hash>` in `{layout.DLQ_STREAM}`, where `<hash>`",
        "  is the first 24 hex digits of SHA-256 of the request's `ce-id` (UTF-8) and `<agent>` is",
        "  `_unrouted` when the request named no registered agent. To see why request `id` was",
        "  rejected, get the last message on that subject. The body is the rejected body (cut to",
        f"  {KEEP_BYTES} bytes); headers ([schema]({DEAD_LETTER_HEADERS})):",
        "",
        *_header_table(dead, "always", "  "),
        "",
        f"- **WAL**: `{layout.WAL_PREFIX}<agent>` in `{layout.WAL_STREAM}` holds every accepted",
        "  request in binary mode, with `Nats-Msg-Id: <agent>:<ce-id>`, `O-Reply` and",
        "  `O-Reply-Encoding`. Only the bus writes it; clients never need it.",
    ]


def _key_table(fields: Mapping[str, tuple[str, str]], indent: str = "  ") -> list[str]:
    rows = [[f"`{key}`", kind, _cell(meaning)] for key, (kind, meaning) in fields.items()]
    return _table(["key", "type", "meaning"], rows, indent)


def _supervision_and_health() -> list[str]:
    sys_evt, hb, kv = layout.SYSTEM_EVENT_PREFIX, layout.HEARTBEAT_PREFIX, layout.SUPERVISOR_BUCKET
    kinds = ", ".join(f"`{kind}`" for kind in get_args(SystemEvent.model_fields["type"].annotation))
    return [
        "## Supervision and health",
        "",
        "The supervisor keeps agent processes alive and says what it does, every agent process",
        "reports on itself, and the health monitor sums it all up, in JSON:",
        "",
        f"- **Supervision events**: `{sys_evt}<agent>` in `{layout.SYSTEM_STREAM}`, one",
        f"  [`SystemEvent`]({SYSTEM_EVENT}) per event. `type` is one of",
        f"  {kinds}.",
        f"- **Supervisor's records**: key `<agent>` of KV bucket `{kv}` (JetStream subject",
        f"  `$KV.{kv}.<agent>`) holds an",
        f"  [`AgentSupervision`]({AGENT_SUPERVISION}), rewritten on every change:",
        "  status, reason, processes, restarts, policy. Read it with a key-value get, or watch the",
        "  bucket.",
        f"- **Heartbeats**: core NATS `{hb}<agent>`, not stored. Every process of the agent",
        f"  (active and standby) publishes a [`Heartbeat`]({HEARTBEAT}) about 10",
        f"  times a second; subscribe to `{hb}*` to hear every agent. Its counters start from",
        "  zero with the process.",
        f"- **WAL progress**: core NATS `{layout.PROGRESS_PREFIX}<agent>`, not stored. The agent's",
        "  active process publishes the WAL sequence it has processed, in ASCII decimal,",
        "  within 10 ms of it moving and nothing while it does not; the splitter counts what",
        "  it accepted for the agent as waiting until then.",
        f"- **Health summaries**: core NATS `{HEALTH_PREFIX}<agent>`, not stored. The health",
        "  monitor publishes each agent's summary every second; a request on",
        f"  `{HEALTH_SUBJECT}` gets all of them at once. The monitor builds them itself, not",
        "  from a model, so they have no schema file. Their keys:",
        "",
        f"  The answer on `{HEALTH_SUBJECT}`:",
        "",
        *_key_table(ALL_AGENTS_FIELDS),
        "",
        f"  One agent's summary (on `{HEALTH_PREFIX}<agent>`, and in `agents` above):",
        "",
        *_key_table(SUMMARY_FIELDS),
        "",
        "  `latency_ms`:",
        "",
        *_key_table(LATENCY_FIELDS),
        "",
        "  Each of `processes`:",
        "",
        *_key_table(PROCESS_FIELDS),
    ]


def _error_codes() -> list[str]:
    rows = [[f"`{code.value}`", _cell(ERROR_MEANINGS[code])] for code in ErrorCode]
    return [
        "## Error codes",
        "",
        f"`error.code` in an `ErrorReply` and `O-Error-Code` on a dead letter ([schema]({REPLY})).",
        "Codes are stable: they are never renamed, only added.",
        "",
        *_table(["code", "meaning"], rows),
    ]


def _agent_definitions(definitions: Sequence[AgentDefinition[Any]]) -> list[str]:
    rows = [
        [
            f"`{d.name}`",
            d.version,
            ", ".join(f"`{c}`" for c in sorted(d.command_types)),
            ", ".join(f"`{e}` v{cls.event_version}" for e, cls in sorted(d.event_types.items())),
            _cell(d.description),
        ]
        for d in definitions
    ]
    return [
        "## Agent definitions",
        "",
        *_table(["definition", "version", "commands", "events", "about"], rows),
    ]


def readme(
    definitions: Sequence[AgentDefinition[Any]],
    paths: Sequence[str],
    envelope: Mapping[str, Mapping[str, Any]],
) -> str:
    """The guide, listing ``paths`` (every generated file) and the ``envelope`` header schemas."""
    sections = [
        _introduction(definitions, paths),
        _requests(envelope[REQUEST_BINARY_HEADERS]),
        _events(envelope[EVENT_HEADERS]),
        _other_streams(envelope[DEAD_LETTER_HEADERS]),
        _supervision_and_health(),
        evolution_guide(),
        self_improvement_guide(),
        _error_codes(),
        _agent_definitions(definitions),
    ]
    return "\n\n".join("\n".join(section) for section in sections) + "\n"
