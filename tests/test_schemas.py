"""schemas/ is current, self-consistent, and describes what the runtime really sends.

``jsonschema`` is not a dependency, so examples are validated through the same pydantic models
the files are generated from, and checked against the runtime that parses or produces them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, cast, get_args

import msgpack
import pytest
from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_json

from o_bus import schemas
from o_bus.agent.catalogue import Catalogue
from o_bus.agent.definition import AgentDefinition
from o_bus.agent.lifecycle import LifecycleChanged, LifecycleState
from o_bus.client import request_headers
from o_bus.errors import ErrorCode, InvalidRequestError
from o_bus.handlers.health.aggregate import parse_heartbeat
from o_bus.runtime.heartbeat import Heartbeat, HeartbeatPublisher, current_rss_bytes
from o_bus.runtime.metrics import LATENCY_BUCKETS_MS
from o_bus.schemas import evolution, health, paths, self_improvement, tools
from o_bus.schemas.evolution import EVOLUTION_FILES
from o_bus.schemas.self_improvement import SELF_IMPROVEMENT_FILES
from o_bus.schemas.tools import TOOLS_FILES
from o_bus.store import layout
from o_bus.store.dead_letter import DeadLetters
from o_bus.store.event_log import event_headers
from o_bus.supervision.records import AgentSupervision, ProcessInfo, SupervisionPolicy, SystemEvent
from o_bus.wire.cloudevents import parse_request
from o_bus.wire.codec import CLOUDEVENTS_JSON, Encoding
from o_bus.wire.reply import Reply, encode_reply, error_reply, error_reply_from, ok_reply

OUT = schemas.DEFAULT_OUT
BINARY = TypeAdapter(schemas.BinaryRequestHeaders)
STRUCTURED = TypeAdapter(schemas.StructuredRequest)
REPLY = TypeAdapter(Reply)
REPLY_HEADERS = TypeAdapter(schemas.ReplyHeaders)
EVENT_HEADERS = TypeAdapter(schemas.EventHeaders)
DEAD_LETTER_HEADERS = TypeAdapter(schemas.DeadLetterHeaders)
NEWER_THAN_DRAFT_07 = {
    "$anchor",
    "$dynamicAnchor",
    "$dynamicRef",
    "$recursiveRef",
    "dependentRequired",
    "dependentSchemas",
    "prefixItems",
    "unevaluatedItems",
    "unevaluatedProperties",
}


@pytest.fixture(scope="module")
def files() -> dict[str, str]:
    return schemas.render()


@pytest.fixture(scope="module")
def definitions() -> list[AgentDefinition[Any]]:
    catalogue = Catalogue.discover()
    return [catalogue.get(name) for name in catalogue.names()]


def load(path: str) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads((OUT / path).read_text(encoding="utf-8")))


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def headers_for(
    command: str, request_id: str = "req-1", changes: Mapping[str, str | None] | None = None
) -> dict[str, str]:
    """Real client headers, with some replaced (or removed, for None)."""
    headers = request_headers(command, request_id, Encoding.JSON, "tests/schemas")
    for name, value in (changes or {}).items():
        if value is None:
            headers.pop(name)
        else:
            headers[name] = value
    return headers


# -- the directory is generated and current ------------------------------------------------


def test_schemas_directory_is_current(files: dict[str, str]) -> None:
    problems = schemas.check(OUT, files)
    assert not problems, "schemas/ is stale; run `python -m o_bus.schemas`:\n" + "\n".join(problems)


def test_generation_is_deterministic(files: dict[str, str]) -> None:
    assert schemas.render() == files
    assert list(files) == sorted(files)
    for path, text in files.items():
        assert text.endswith("\n"), path
        assert not text.endswith("\n\n"), path
        if path.endswith(".json"):
            canonical = json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False)
            assert text == canonical + "\n", path


def test_check_and_write_round_trip(tmp_path: Path, files: dict[str, str]) -> None:
    out = tmp_path / "schemas"
    assert schemas.main(["--check", "--out", str(out)]) == 1
    assert len(schemas.write(out, files)) == len(files)
    assert schemas.check(out, files) == []
    (out / paths.REPLY).write_text("{}\n")
    (out / "agents" / "gone" / "commands").mkdir(parents=True)
    (out / "agents" / "gone" / "commands" / "old.schema.json").write_text("{}\n")
    assert schemas.check(out, files) == [
        f"changed: {paths.REPLY}",
        "obsolete: agents/gone/commands/old.schema.json",
    ]
    assert schemas.main(["--check", "--out", str(out)]) == 1
    assert schemas.main(["--out", str(out)]) == 0
    assert schemas.main(["--check", "--out", str(out)]) == 0
    assert not (out / "agents" / "gone").exists()


def test_every_expected_file_is_generated(
    files: dict[str, str], definitions: list[AgentDefinition[Any]]
) -> None:
    expected = {
        "README.md",
        "asyncapi.json",
        "reply.schema.json",
        "system/lifecycle-changed.schema.json",
        "system/system-event.schema.json",
        "system/heartbeat.schema.json",
        "system/agent-supervision.schema.json",
        "envelope/request-binary.headers.schema.json",
        "envelope/request-structured.schema.json",
        "envelope/event.headers.schema.json",
        "envelope/reply.headers.schema.json",
        "envelope/dead-letter.headers.schema.json",
        "query-request.schema.json",
        "query-reply.schema.json",
        *EVOLUTION_FILES,
        *SELF_IMPROVEMENT_FILES,
        *TOOLS_FILES,
    }
    assert {"counter", "echo"} <= {d.name for d in definitions}
    for d in definitions:
        expected.add(f"agents/{d.name}/state.schema.json")
        expected.update(f"agents/{d.name}/commands/{c}.schema.json" for c in d.command_types)
        expected.update(
            f"agents/{d.name}/events/{e}.v{cls.event_version}.schema.json"
            for e, cls in d.event_types.items()
        )
        expected.update(f"agents/{d.name}/queries/{q}.schema.json" for q in d.queries.types)
    assert set(files) == expected
    readme = files["README.md"]
    assert all(f"[`{path}`]({path})" in readme for path in files)


def test_schema_files_have_id_dialect_and_title(
    files: dict[str, str], definitions: list[AgentDefinition[Any]]
) -> None:
    titles = {
        paths.REPLY: "Reply",
        paths.LIFECYCLE_CHANGED: "LifecycleChanged",
        paths.SYSTEM_EVENT: "SystemEvent",
        paths.HEARTBEAT: "Heartbeat",
        paths.AGENT_SUPERVISION: "AgentSupervision",
        paths.REQUEST_BINARY_HEADERS: "BinaryRequestHeaders",
        paths.REQUEST_STRUCTURED: "StructuredRequest",
        paths.REPLY_HEADERS: "ReplyHeaders",
        paths.EVENT_HEADERS: "EventHeaders",
        paths.DEAD_LETTER_HEADERS: "DeadLetterHeaders",
    }
    for d in definitions:
        titles[f"agents/{d.name}/state.schema.json"] = d.state_type.__name__
        for c, command_type in d.command_types.items():
            titles[f"agents/{d.name}/commands/{c}.schema.json"] = command_type.__name__
        for e, cls in d.event_types.items():
            titles[f"agents/{d.name}/events/{e}.v{cls.event_version}.schema.json"] = cls.__name__
        for q, query_type in d.queries.types.items():
            titles[f"agents/{d.name}/queries/{q}.schema.json"] = query_type.__name__
    titles.update(
        {
            evolution.ROUTE: "Route",
            evolution.ROUTE_CHANGED: "RouteChanged",
            evolution.EVOLUTION: "Evolution",
            evolution.DECISION: "EvolutionDecisionRecord",
            evolution.DIFF: "DiffRecord",
            evolution.CANDIDATE_STATS: "CandidateStats",
            tools.REQUESTED: "ToolCallRequested",
            tools.COMPLETED: "ToolCallCompleted",
            tools.RESULT: "ToolResultCommand",
            self_improvement.FEEDBACK_REQUEST: "FeedbackIn",
            self_improvement.FEEDBACK_REPLY: "FeedbackAccepted",
            self_improvement.FEEDBACK: "Feedback",
            self_improvement.REGRESSION_CASE: "RegressionCase",
            self_improvement.TRIGGER_RECORD: "TriggerRecord",
        }
    )
    titles["query-request.schema.json"] = "QueryRequest"
    titles["query-reply.schema.json"] = "QueryReply"
    json_schemas = [p for p in files if p.endswith(".schema.json")]
    assert sorted(titles) == sorted(json_schemas)
    for path in json_schemas:
        doc = load(path)
        assert doc["$id"] == f"urn:o-bus:schemas:{path}"
        assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert doc["title"] == titles[path], path
        assert doc["description"], path
        used = {key for node in walk(doc) for key in node} & NEWER_THAN_DRAFT_07
        assert not used, f"{path} uses {used}: AsyncAPI and draft-07 tools cannot read it"


# -- replies --------------------------------------------------------------------------------


def test_every_error_code_is_in_the_reply_schema() -> None:
    codes = load(paths.REPLY)["$defs"]["ErrorCode"]
    assert codes["enum"] == [code.value for code in ErrorCode]
    assert set(codes["x-enumDescriptions"]) == {code.value for code in ErrorCode}
    dead_letter_codes = load(paths.DEAD_LETTER_HEADERS)["$defs"]["ErrorCode"]["enum"]
    assert dead_letter_codes == codes["enum"]
    readme = (OUT / "README.md").read_text(encoding="utf-8")
    for code in ErrorCode:
        assert f"| `{code.value}` |" in readme


def test_real_replies_match_the_reply_schema() -> None:
    events = [{"seq": 7, "type": "incremented", "version": 1, "data": {"by": 5}}]
    ok = ok_reply("counter", "req-1", 7, events)
    with pytest.raises(InvalidRequestError) as caught:
        parse_request({"ce-id": "req-2"}, b"")
    error = error_reply_from("counter", "req-2", caught.value)
    unrouted = error_reply(None, None, ErrorCode.UNKNOWN_AGENT, "no agent named 'x'")
    defs = load(paths.REPLY)["$defs"]
    for example, model in ((ok, "OkReply"), (error, "ErrorReply"), (unrouted, "ErrorReply")):
        reply = REPLY.validate_python(example)
        assert type(reply).__name__ == model
        assert reply.model_dump(mode="json") == example
        assert defs[model]["required"] == list(example), "every key is always sent"
        for encoding in Encoding:
            body, headers = encode_reply(example, encoding)
            REPLY_HEADERS.validate_python(headers)
            assert headers["O-Status"] == ("ok" if example["ok"] else "error")
            decoded = json.loads(body) if encoding is Encoding.JSON else msgpack.unpackb(body)
            assert REPLY.validate_python(decoded) == reply
    assert error["error"]["code"] == "missing_attribute"


# -- requests -------------------------------------------------------------------------------


def test_binary_request_headers_match_the_parser() -> None:
    schema = load(paths.REQUEST_BINARY_HEADERS)
    assert schema["required"] == ["ce-id", "ce-type", "ce-source", "ce-specversion"]
    for encoding in Encoding:
        headers = request_headers("increment", "req-1", encoding, "tests/schemas")
        assert set(headers) <= set(schema["properties"])
        BINARY.validate_python(headers)
        body = to_json({"by": 2}) if encoding is Encoding.JSON else msgpack.packb({"by": 2})
        envelope = parse_request(headers, body)
        assert (envelope.id, envelope.type, envelope.encoding) == ("req-1", "increment", encoding)
    with_charset = headers_for(
        "increment", changes={"Content-Type": "application/json; charset=utf-8"}
    )
    BINARY.validate_python(with_charset)
    assert parse_request(with_charset, b"{}").encoding is Encoding.JSON


@pytest.mark.parametrize(
    "changes",
    [
        {"ce-id": ""},
        {"ce-id": "x" * 201},
        {"ce-id": None},
        {"ce-type": "1increment"},
        {"ce-type": "in crement"},
        {"ce-source": ""},
        {"ce-source": None},
        {"ce-specversion": "0.3"},
        {"Content-Type": "text/plain"},
    ],
)
def test_headers_the_schema_refuses_the_parser_refuses(changes: dict[str, str | None]) -> None:
    headers = headers_for("increment", changes=changes)
    with pytest.raises(ValidationError):
        BINARY.validate_python(headers)
    with pytest.raises(InvalidRequestError):
        parse_request(headers, b"{}")


def test_structured_requests_match_the_parser() -> None:
    as_json = {
        "specversion": "1.0",
        "id": "req-3",
        "type": "increment",
        "source": "tests/schemas",
        "data": {"by": 5},
    }
    as_msgpack = {
        **{k: v for k, v in as_json.items() if k != "data"},
        "datacontenttype": "application/msgpack",
        "data_base64": base64.b64encode(msgpack.packb({"by": 5})).decode(),
    }
    for example in (as_json, as_msgpack):
        assert STRUCTURED.validate_python(example) == example
        envelope = parse_request({"Content-Type": CLOUDEVENTS_JSON}, to_json(example))
        assert (envelope.id, envelope.type, envelope.reply_encoding) == (
            "req-3",
            "increment",
            Encoding.JSON,
        )
    schema = load(paths.REQUEST_STRUCTURED)
    assert schema["then"] == {"required": ["data_base64"]}
    without_data = {k: v for k, v in as_msgpack.items() if k != "data_base64"}
    with pytest.raises(InvalidRequestError):
        parse_request({"Content-Type": CLOUDEVENTS_JSON}, to_json(without_data))
    with pytest.raises(ValidationError):
        STRUCTURED.validate_python({**as_json, "specversion": "0.3"})


def test_command_schemas_accept_what_the_agent_accepts(
    definitions: list[AgentDefinition[Any]],
) -> None:
    by = load("agents/counter/commands/increment.schema.json")["properties"]["by"]
    assert (by["type"], by["maximum"], by["default"]) == ("integer", 2**53, 1)
    counter = next(d for d in definitions if d.name == "counter")
    assert counter.parse_command("increment", b'{"by": 5}', Encoding.JSON).model_dump() == {"by": 5}
    with pytest.raises(InvalidRequestError) as bad:
        counter.parse_command("increment", b'{"by": "five"}', Encoding.JSON)
    assert bad.value.code is ErrorCode.INVALID_PAYLOAD
    for d in definitions:
        for name, command_type in d.command_types.items():
            schema = load(f"agents/{d.name}/commands/{name}.schema.json")
            assert schema["x-o-bus"] == {"definition": d.name, "command": name}
            assert set(schema.get("properties", {})) == set(command_type.model_fields)
            if schema.get("additionalProperties") is False:
                with pytest.raises(InvalidRequestError):
                    d.parse_command(name, b'{"not_a_field": 1}', Encoding.JSON)


# -- events, lifecycle, dead letters --------------------------------------------------------


def test_event_schemas_describe_stored_events(definitions: list[AgentDefinition[Any]]) -> None:
    counter = next(d for d in definitions if d.name == "counter")
    increment = counter.parse_command("increment", b'{"by": 2}', Encoding.JSON)
    reset = counter.parse_command("reset", b"", Encoding.JSON)
    state = counter.initial_state()
    decided = counter.decide(state, increment)
    produced = [*decided.events, *counter.decide(decided.state, reset).events]
    assert [e.event_type for e in produced] == ["incremented", "reset"]
    header_schema = load(paths.EVENT_HEADERS)
    for seq, event in enumerate(produced, 1):
        path = f"agents/counter/events/{event.event_type}.v{event.event_version}.schema.json"
        schema = load(path)
        data = event.model_dump(mode="json")
        assert schema["required"] == list(data)
        body = event.model_dump_json().encode()
        assert counter.decode_event(event.event_type, event.event_version, body) == event
        headers = event_headers(
            "counter-2",
            seq,
            event.event_type,
            event.event_version,
            "req-1",
            41,
            counter.version,
            "2025-06-01T12:00:00.000001Z",
        )
        assert EVENT_HEADERS.validate_python(headers) == headers
        assert header_schema["required"] == list(headers)


def test_lifecycle_changed_example() -> None:
    change = LifecycleChanged(
        agent="counter",
        previous=None,
        state=LifecycleState.INITIALIZING,
        reason="starting",
        code_version="1.0.0",
        pid=4242,
        at="2025-06-01T12:00:00.000001Z",
    )
    body = change.model_dump_json()
    assert LifecycleChanged.model_validate_json(body) == change
    schema = load(paths.LIFECYCLE_CHANGED)
    assert schema["required"] == list(json.loads(body))
    assert schema["$defs"]["LifecycleState"]["enum"] == [s.value for s in LifecycleState]


def _assert_sent_as_documented(path: str, body: str) -> dict[str, Any]:
    """The schema at ``path`` requires exactly the keys of ``body``; return the schema."""
    schema = load(path)
    assert schema["required"] == list(json.loads(body)), "every key is always sent"
    return schema


AT = "2025-06-01T12:00:00.000001Z"


def test_system_events_example() -> None:
    kinds = get_args(SystemEvent.model_fields["type"].annotation)
    assert "crash" in kinds
    for kind in kinds:
        event = SystemEvent(
            agent="counter", type=kind, reason="exit code -9", pid=4242, restarts=1, at=AT
        )
        body = event.model_dump_json()
        assert SystemEvent.model_validate_json(body) == event
        schema = _assert_sent_as_documented(paths.SYSTEM_EVENT, body)
    assert schema["properties"]["type"]["enum"] == list(kinds)
    assert f"{layout.SYSTEM_EVENT_PREFIX}<agent>" in schema["description"]
    without_pid = SystemEvent(agent="counter", type="escalation", at=AT)
    assert json.loads(without_pid.model_dump_json())["pid"] is None


class _RecordingNats:
    def __init__(self) -> None:
        self.published: list[tuple[str, bytes]] = []

    async def publish(self, subject: str, payload: bytes) -> None:
        self.published.append((subject, payload))


async def test_heartbeats_match_their_schema() -> None:
    now = time.time()
    beat = Heartbeat(
        agent="counter-2",
        definition="counter",
        pid=os.getpid(),
        holder="host-1:4242:abc",
        role="active",
        lifecycle="running",
        code_version="1.0.0",
        started_at=now - 5.0,
        sent_at=now,
        seq=7,
        wal_seq=41,
        wal_backlog=0,
        rss_bytes=current_rss_bytes(),
        requests=3,
        errors=1,
        latency_sum_ms=4.5,
        latency_buckets=[0, 2, 1] + [0] * (len(LATENCY_BUCKETS_MS) - 2),
    )
    nc = _RecordingNats()
    await HeartbeatPublisher(cast(Any, nc), "counter-2", lambda: beat).beat()
    [(subject, payload)] = nc.published
    assert subject == layout.heartbeat_subject("counter-2")
    assert Heartbeat.model_validate_json(payload) == beat
    assert parse_heartbeat(subject, payload) == beat, "the health monitor takes it"
    schema = _assert_sent_as_documented(paths.HEARTBEAT, payload.decode())
    assert schema["properties"]["role"]["enum"] == ["active", "standby", "starting"]
    assert f"{layout.HEARTBEAT_PREFIX}<agent>" in schema["description"]


def test_supervisor_record_matches_its_schema() -> None:
    process = ProcessInfo(pid=4242, host="host-1", standby=False, started_at=time.time())
    record = AgentSupervision(
        agent="counter",
        status="running",
        reason="",
        processes=[process],
        restarts=2,
        restart_times=[time.time() - 1.0],
        policy=SupervisionPolicy(standby=True),
        supervisor="host-1:99",
        updated_at=time.time(),
    )
    body = record.model_dump_json()
    assert AgentSupervision.model_validate_json(body) == record
    schema = _assert_sent_as_documented(paths.AGENT_SUPERVISION, body)
    data = json.loads(body)
    assert schema["$defs"]["ProcessInfo"]["required"] == list(data["processes"][0])
    assert schema["$defs"]["SupervisionPolicy"]["required"] == list(data["policy"])
    assert layout.SUPERVISOR_BUCKET in schema["description"]


def test_health_summaries_are_documented(
    files: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    health.check_health_summary_matches_monitor()  # the monitor's real keys are documented
    readme = files["README.md"]
    assert f"`{health.HEALTH_PREFIX}<agent>`" in readme
    for fields in (
        health.ALL_AGENTS_FIELDS,
        health.SUMMARY_FIELDS,
        health.LATENCY_FIELDS,
        health.PROCESS_FIELDS,
    ):
        for key, (kind, _) in fields.items():
            assert f"  | `{key}` | {kind} |" in readme
    assert not any("health" in path for path in files), "a plain dict: no schema file"
    fewer = {k: v for k, v in health.SUMMARY_FIELDS.items() if k != "up"}
    monkeypatch.setattr(health, "SUMMARY_FIELDS", fewer)
    with pytest.raises(RuntimeError, match="summary"):
        health.check_health_summary_matches_monitor()


class _RecordingJetStream:
    def __init__(self) -> None:
        self.published: list[tuple[str, bytes, dict[str, str]]] = []

    async def publish(
        self, subject: str, payload: bytes, *, headers: dict[str, str], timeout: float
    ) -> None:
        self.published.append((subject, payload, headers))


async def test_dead_letters_match_their_schema() -> None:
    js = _RecordingJetStream()
    dead_letters = DeadLetters(cast(Any, js))
    request = headers_for("increment", "req-9")
    err = InvalidRequestError(ErrorCode.INVALID_PAYLOAD, "invalid data for command 'increment'")
    dead_letters.reject("counter", "req-9", err, b'{"by": "x"}', request, wal_seq=12)
    dead_letters.reject(None, None, err, b"", None)
    await dead_letters.flush()
    digest = hashlib.sha256(b"req-9").hexdigest()[:24]
    assert [subject for subject, _, _ in js.published] == [
        f"{layout.DLQ_PREFIX}counter.{digest}",
        f"{layout.DLQ_PREFIX}_unrouted.{hashlib.sha256(b'').hexdigest()[:24]}",
    ]
    for _, _, headers in js.published:
        DEAD_LETTER_HEADERS.validate_python(headers)
    assert js.published[0][2]["O-Wal-Seq"] == "12"


# -- AsyncAPI -------------------------------------------------------------------------------


def _pointer(doc: Any, pointer: str) -> Any:
    node = doc
    for token in pointer.removeprefix("#/").split("/"):
        node = node[token.replace("~1", "/").replace("~0", "~")]
    return node


def test_asyncapi_document(files: dict[str, str], definitions: list[AgentDefinition[Any]]) -> None:
    doc = load(paths.ASYNCAPI_FILE)
    assert doc["asyncapi"] == "3.0.0"
    referenced: set[str] = set()
    for node in walk(doc):
        ref = node.get("$ref")
        if not isinstance(ref, str):
            continue
        if ref.startswith("#/"):
            _pointer(doc, ref)
        else:
            assert ref.startswith("./"), ref
            target = ref[2:].split("#", 1)[0]
            assert target in files, ref
            referenced.add(target)
    for d in definitions:
        referenced.add(doc["x-o-bus-definitions"][d.name]["stateSchema"][2:])
    json_schemas = {p for p in files if p.endswith(".schema.json")}
    assert json_schemas == referenced, "every schema file is reachable from the AsyncAPI document"

    channels = doc["channels"]
    assert channels["request"]["address"] == "o.req.{agent}"
    assert channels["events"]["address"] == "o.evt.{agent}"
    assert channels["lifecycle"]["address"] == "o.sys.lifecycle.{agent}"
    assert channels["deadLetters"]["address"] == "o.dlq.{agent}.{hash}"
    assert channels["systemEvents"]["address"] == layout.SYSTEM_EVENT_PREFIX + "{agent}"
    assert channels["systemEvents"]["x-o-bus-stream"] == layout.SYSTEM_STREAM
    assert channels["heartbeats"]["address"] == layout.HEARTBEAT_PREFIX + "{agent}"
    assert "x-o-bus-stream" not in channels["heartbeats"], "core NATS, not stored"
    supervision = channels["supervision"]
    assert supervision["address"] == f"$KV.{layout.SUPERVISOR_BUCKET}.{{agent}}"
    assert supervision["x-o-bus-kv"] == {"bucket": layout.SUPERVISOR_BUCKET, "key": "{agent}"}
    assert channels["reply"]["address"] is None
    for name, channel in channels.items():
        address = channel["address"] or ""
        placeholders = {part.split("}")[0] for part in address.split("{")[1:]}
        assert placeholders == set(channel.get("parameters", {})), name
    for name, operation in doc["operations"].items():
        channel = operation["channel"]["$ref"]
        for message in operation["messages"]:
            assert message["$ref"].startswith(channel + "/messages/"), name
    handle = doc["operations"]["handleRequest"]
    assert handle["action"] == "receive"
    assert "reply inbox" in handle["reply"]["x-o-bus-reply-to"]
    assert "reply inbox" in channels["reply"]["description"]
    messages = doc["components"]["messages"]
    for d in definitions:
        for command in d.command_types:
            message = messages[f"command.{d.name}.{command}"]
            assert message["headers"]["allOf"][1]["properties"]["ce-type"] == {"const": command}
        for event_type, cls in d.event_types.items():
            assert f"event.{d.name}.{event_type}.v{cls.event_version}" in messages
    for key, path in (
        ("systemEvent", paths.SYSTEM_EVENT),
        ("heartbeat", paths.HEARTBEAT),
        ("agentSupervision", paths.AGENT_SUPERVISION),
    ):
        assert messages[key]["payload"] == {"$ref": f"./{path}"}
    used = {op["channel"]["$ref"] for op in doc["operations"].values()}
    used |= {op["reply"]["channel"]["$ref"] for op in doc["operations"].values() if "reply" in op}
    assert {f"#/channels/{name}" for name in channels} == used, "every channel has an operation"
