"""The request envelope (CloudEvents 1.0, binary and structured mode), codecs and replies."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Annotated, Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nats.aio.client import Client
from nats.aio.msg import Msg
from pydantic import Field, TypeAdapter, ValidationError

from o_bus.client import request_headers
from o_bus.errors import CommandRejected, ErrorCode, InvalidRequestError
from o_bus.wire.attributes import CLEAN_TEXT, is_clean
from o_bus.wire.cloudevents import (
    MAX_ID_LENGTH,
    RequestEnvelope,
    parse_request,
    reply_encoding_of,
)
from o_bus.wire.codec import CLOUDEVENTS_JSON, Encoding, decode, encode, encoding_for
from o_bus.wire.reply import (
    STATUS_HEADER,
    ErrorReply,
    OkReply,
    encode_reply,
    error_reply,
    error_reply_from,
    ok_reply,
)


def binary_headers(**overrides: str | None) -> dict[str, str]:
    headers: dict[str, str | None] = {
        "ce-id": "req-1",
        "ce-type": "increment",
        "ce-source": "tests/wire",
        "ce-specversion": "1.0",
        "Content-Type": "application/json",
    }
    headers.update(overrides)
    return {k: v for k, v in headers.items() if v is not None}


def structured(**fields: Any) -> bytes:
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": "req-2",
        "type": "increment",
        "source": "tests/wire",
    }
    for key, value in fields.items():
        if value is None:
            event.pop(key, None)
        else:
            event[key] = value
    return json.dumps(event).encode()


STRUCTURED = {"Content-Type": CLOUDEVENTS_JSON}


def rejected(headers: dict[str, str] | None, body: bytes) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as info:
        parse_request(headers, body)
    return info.value


# -- binary mode --------------------------------------------------------------------------------


def test_binary_mode_json() -> None:
    headers = binary_headers(**{"ce-time": "2024-01-02T03:04:05Z", "ce-subject": "s"})
    envelope = parse_request(headers, b'{"by": 2}')
    assert envelope == RequestEnvelope(
        id="req-1",
        type="increment",
        source="tests/wire",
        data=b'{"by": 2}',
        encoding=Encoding.JSON,
        reply_encoding=Encoding.JSON,
        time="2024-01-02T03:04:05Z",
        subject="s",
    )


@pytest.mark.parametrize(
    "content_type",
    [
        "application/msgpack",
        "application/x-msgpack",
        "application/vnd.msgpack",
        "Application/MsgPack; charset=binary",
    ],
)
def test_binary_mode_msgpack(content_type: str) -> None:
    body = msgpack.packb({"by": 7})
    envelope = parse_request(binary_headers(**{"Content-Type": content_type}), body)
    assert envelope.encoding is Encoding.MSGPACK
    assert envelope.reply_encoding is Encoding.MSGPACK
    assert envelope.data == body
    assert decode(envelope.data, envelope.encoding) == {"by": 7}


def test_binary_mode_without_content_type_is_json() -> None:
    envelope = parse_request(binary_headers(**{"Content-Type": None}), b"{}")
    assert envelope.encoding is Encoding.JSON
    assert envelope.time is None
    assert envelope.subject is None


def test_lowercase_content_type_header_is_honoured() -> None:
    headers = binary_headers(**{"Content-Type": None, "content-type": "application/msgpack"})
    assert parse_request(headers, msgpack.packb({})).encoding is Encoding.MSGPACK


def test_client_request_headers_parse() -> None:
    headers = request_headers("reset", "abc", Encoding.MSGPACK, "somewhere")
    envelope = parse_request(headers, msgpack.packb({}))
    assert (envelope.id, envelope.type, envelope.source) == ("abc", "reset", "somewhere")
    assert envelope.encoding is Encoding.MSGPACK


@pytest.mark.parametrize("name", ["ce-id", "ce-type", "ce-source", "ce-specversion"])
def test_binary_mode_missing_attribute(name: str) -> None:
    err = rejected(binary_headers(**{name: None}), b"{}")
    assert err.code is ErrorCode.MISSING_ATTRIBUTE
    assert err.details["missing"] == [name]


def test_no_headers_at_all() -> None:
    no_headers: tuple[dict[str, str] | None, ...] = (None, {})
    for headers in no_headers:
        err = rejected(headers, b'{"by": 1}')
        assert err.code is ErrorCode.MISSING_ATTRIBUTE
        assert err.details["missing"] == ["ce-id", "ce-type", "ce-source", "ce-specversion"]


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"ce-id": ""}, ErrorCode.MALFORMED_REQUEST),
        ({"ce-id": "x" * (MAX_ID_LENGTH + 1)}, ErrorCode.MALFORMED_REQUEST),
        ({"ce-type": ""}, ErrorCode.MALFORMED_REQUEST),
        ({"ce-type": "1increment"}, ErrorCode.MALFORMED_REQUEST),
        ({"ce-type": "incr ement"}, ErrorCode.MALFORMED_REQUEST),
        ({"ce-type": "a" * 129}, ErrorCode.MALFORMED_REQUEST),
        ({"ce-type": "inc>"}, ErrorCode.MALFORMED_REQUEST),
        ({"ce-source": ""}, ErrorCode.MISSING_ATTRIBUTE),
        ({"ce-specversion": "0.3"}, ErrorCode.MALFORMED_REQUEST),
        ({"ce-specversion": "1.0 "}, ErrorCode.MALFORMED_REQUEST),
        ({"Content-Type": "text/plain"}, ErrorCode.UNSUPPORTED_CONTENT_TYPE),
        ({"Content-Type": "application/xml"}, ErrorCode.UNSUPPORTED_CONTENT_TYPE),
    ],
)
def test_binary_mode_invalid_attribute(overrides: dict[str, str], code: ErrorCode) -> None:
    assert rejected(binary_headers(**overrides), b"{}").code is code


def test_id_at_the_length_limit_is_accepted() -> None:
    envelope = parse_request(binary_headers(**{"ce-id": "i" * MAX_ID_LENGTH}), b"{}")
    assert len(envelope.id) == MAX_ID_LENGTH


def test_binary_mode_keeps_body_bytes_unparsed() -> None:
    # The splitter does not decode the body; the worker does (and rejects garbage there).
    envelope = parse_request(binary_headers(), b"\xff\xfe not json")
    assert envelope.data == b"\xff\xfe not json"


# -- structured mode ----------------------------------------------------------------------------


def test_structured_mode_json_data() -> None:
    body = structured(data={"by": 5}, time="2024-05-06T07:08:09Z", subject="x")
    envelope = parse_request(STRUCTURED, body)
    assert envelope.id == "req-2"
    assert envelope.type == "increment"
    assert envelope.encoding is Encoding.JSON
    assert envelope.reply_encoding is Encoding.JSON
    assert json.loads(envelope.data) == {"by": 5}
    assert (envelope.time, envelope.subject) == ("2024-05-06T07:08:09Z", "x")


def test_structured_content_type_with_parameters() -> None:
    headers = {"Content-Type": "Application/CloudEvents+JSON; charset=utf-8"}
    assert parse_request(headers, structured(data={})).id == "req-2"


def test_structured_mode_without_data() -> None:
    assert parse_request(STRUCTURED, structured()).data == b""


@pytest.mark.parametrize("attributes", [{"time": 12}, {"subject": ["a"]}])
def test_structured_mode_refuses_non_string_time_and_subject(attributes: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_request(STRUCTURED, structured(**attributes))
    assert caught.value.code is ErrorCode.MALFORMED_REQUEST


CLEAN_SAMPLES = ["abc", "a b", "é ü", "x", "id-\ufffd", "a\u2028b", "billing/invoicer"]
UNCLEAN_SAMPLES = ["abc ", " abc", "abc\n", "\tabc", "a\x00b", "a\x7f", "a\x85", "\u00a0a"]
UNCLEAN_SAMPLES += ["a\u2028", "\ufeffa", "a\u3000", "a\x1bb"]


def test_the_published_pattern_and_the_runtime_agree() -> None:
    """The schema pattern (checked here by pydantic's regex engine) says what is_clean says."""
    adapter = TypeAdapter(Annotated[str, Field(pattern=CLEAN_TEXT)])
    for value in CLEAN_SAMPLES + UNCLEAN_SAMPLES:
        try:
            adapter.validate_python(value)
            by_schema = True
        except ValidationError:
            by_schema = False
        assert by_schema is is_clean(value) is (value in CLEAN_SAMPLES), repr(value)


def test_structured_mode_msgpack_data_base64() -> None:
    packed = msgpack.packb({"by": 9})
    body = structured(
        datacontenttype="application/msgpack", data_base64=base64.b64encode(packed).decode()
    )
    envelope = parse_request(STRUCTURED, body)
    assert envelope.encoding is Encoding.MSGPACK
    assert envelope.reply_encoding is Encoding.JSON  # structured requests get JSON replies
    assert envelope.data == packed


def test_structured_mode_json_data_base64() -> None:
    raw = b'{"by": 4}'
    envelope = parse_request(STRUCTURED, structured(data_base64=base64.b64encode(raw).decode()))
    assert envelope.encoding is Encoding.JSON
    assert envelope.data == raw


@pytest.mark.parametrize("value", ["not base64!", "abc", 12, None])
def test_structured_mode_invalid_base64(value: Any) -> None:
    body = json.dumps(
        {"specversion": "1.0", "id": "i", "type": "t", "source": "s", "data_base64": value}
    ).encode()
    assert rejected(STRUCTURED, body).code is ErrorCode.MALFORMED_REQUEST


def test_structured_mode_msgpack_needs_data_base64() -> None:
    body = structured(datacontenttype="application/msgpack", data={"by": 1})
    assert rejected(STRUCTURED, body).code is ErrorCode.MALFORMED_REQUEST


def test_structured_mode_unsupported_datacontenttype() -> None:
    body = structured(datacontenttype="text/csv", data="a,b")
    assert rejected(STRUCTURED, body).code is ErrorCode.UNSUPPORTED_CONTENT_TYPE


@pytest.mark.parametrize("name", ["id", "type", "source", "specversion"])
def test_structured_mode_missing_attribute(name: str) -> None:
    err = rejected(STRUCTURED, structured(**{name: None}))
    assert err.code is ErrorCode.MISSING_ATTRIBUTE
    assert err.details["missing"] == [name]


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"id": 5}, ErrorCode.MALFORMED_REQUEST),
        ({"id": ""}, ErrorCode.MALFORMED_REQUEST),
        ({"id": "i" * (MAX_ID_LENGTH + 1)}, ErrorCode.MALFORMED_REQUEST),
        ({"type": ["increment"]}, ErrorCode.MALFORMED_REQUEST),
        ({"type": "no spaces allowed"}, ErrorCode.MALFORMED_REQUEST),
        ({"source": 3}, ErrorCode.MISSING_ATTRIBUTE),
        ({"specversion": 1.0}, ErrorCode.MALFORMED_REQUEST),
        ({"specversion": "2.0"}, ErrorCode.MALFORMED_REQUEST),
    ],
)
def test_structured_mode_invalid_attribute(fields: dict[str, Any], code: ErrorCode) -> None:
    assert rejected(STRUCTURED, structured(**fields)).code is code


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"not json",
        b"[1, 2, 3]",
        b'"a string"',
        b"null",
        b"\xff\xfe\xfd",
        b"[" * 5000 + b"]" * 5000,
        b'{"id": "a"} trailing',
    ],
    ids=["empty", "truncated", "text", "array", "string", "null", "non-utf8", "deep", "trailing"],
)
def test_structured_mode_malformed(body: bytes) -> None:
    assert rejected(STRUCTURED, body).code is ErrorCode.MALFORMED_REQUEST


# -- WAL headers ----------------------------------------------------------------------------------


def test_wal_headers_carry_dedup_key_reply_and_encoding() -> None:
    envelope = parse_request(
        binary_headers(
            **{"Content-Type": "application/msgpack", "ce-time": "t", "ce-subject": "s"}
        ),
        msgpack.packb({}),
    )
    headers = envelope.wal_headers("counter:req-1", "_INBOX.abc")
    assert headers["Nats-Msg-Id"] == "counter:req-1"
    assert headers["O-Reply"] == "_INBOX.abc"
    assert headers["O-Reply-Encoding"] == "application/msgpack"
    assert headers["Content-Type"] == "application/msgpack"
    assert headers["ce-specversion"] == "1.0"
    assert (headers["ce-time"], headers["ce-subject"]) == ("t", "s")
    # The WAL record is itself a valid binary-mode request.
    again = parse_request(headers, envelope.data)
    assert (again.id, again.type, again.encoding) == (envelope.id, envelope.type, envelope.encoding)


def test_wal_headers_without_reply_inbox() -> None:
    headers = parse_request(binary_headers(), b"{}").wal_headers("k", None)
    assert "O-Reply" not in headers
    assert "ce-time" not in headers


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (None, Encoding.JSON),
        ({}, Encoding.JSON),
        ({"Content-Type": "application/msgpack"}, Encoding.MSGPACK),
        ({"content-type": "application/x-msgpack; q=1"}, Encoding.MSGPACK),
        ({"Content-Type": "text/plain"}, Encoding.JSON),
        ({"Content-Type": CLOUDEVENTS_JSON}, Encoding.JSON),
    ],
)
def test_reply_encoding_of_unparsed_requests(
    headers: dict[str, str] | None, expected: Encoding
) -> None:
    assert reply_encoding_of(headers) is expected


# -- codecs ---------------------------------------------------------------------------------------


def test_encoding_for() -> None:
    assert encoding_for(None) is Encoding.JSON
    assert encoding_for("") is Encoding.JSON
    assert encoding_for(" application/json ;charset=utf-8") is Encoding.JSON
    assert encoding_for("APPLICATION/MSGPACK") is Encoding.MSGPACK
    with pytest.raises(InvalidRequestError) as info:
        encoding_for(CLOUDEVENTS_JSON)  # a body encoding, not an envelope
    assert info.value.code is ErrorCode.UNSUPPORTED_CONTENT_TYPE


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(value=json_values, encoding=st.sampled_from(list(Encoding)))
def test_codec_round_trip(value: Any, encoding: Encoding) -> None:
    decoded = decode(encode(value, encoding), encoding)
    assert decoded == value
    assert type(decoded) is type(value)


@settings(max_examples=100, deadline=None)
@given(value=st.binary(max_size=64))
def test_msgpack_keeps_bytes(value: bytes) -> None:
    assert decode(encode({"raw": value}, Encoding.MSGPACK), Encoding.MSGPACK) == {"raw": value}


def test_empty_body_decodes_to_none() -> None:
    assert decode(b"", Encoding.JSON) is None
    assert decode(b"", Encoding.MSGPACK) is None


@pytest.mark.parametrize(
    "body",
    [
        b"\xc1",  # a byte msgpack never uses
        b"\x92\x01",  # array of 2 with one element
        b"\x01\x02",  # extra data after a value
        b"\xa2\xff\xfe",  # str with invalid UTF-8
        b"\x81\x01\x02",  # int map key
        b"\x91" * 5000 + b"\xc0",  # nested deeper than the unpacker's stack
        b"\xdd\xff\xff\xff\xff",  # array claiming 4 billion elements
    ],
    ids=["reserved", "truncated", "extra", "bad-utf8", "int-key", "deep", "huge-array"],
)
def test_msgpack_garbage(body: bytes) -> None:
    with pytest.raises(InvalidRequestError) as info:
        decode(body, Encoding.MSGPACK)
    assert info.value.code is ErrorCode.MALFORMED_REQUEST


@pytest.mark.parametrize(
    "body",
    [b"{", b"\xff\xfe", b"[" * 5000 + b"]" * 5000, b'{"a": 1} x', b"{'a': 1}"],
    ids=["truncated", "non-utf8", "deep", "trailing", "single-quotes"],
)
def test_json_garbage(body: bytes) -> None:
    with pytest.raises(InvalidRequestError) as info:
        decode(body, Encoding.JSON)
    assert info.value.code is ErrorCode.MALFORMED_REQUEST


@settings(max_examples=300, deadline=None)
@given(body=st.binary(min_size=1, max_size=64), encoding=st.sampled_from(list(Encoding)))
def test_decode_never_raises_anything_but_invalid_request(body: bytes, encoding: Encoding) -> None:
    code = None
    try:
        decode(body, encoding)
    except InvalidRequestError as err:
        code = err.code
    assert code in (None, ErrorCode.MALFORMED_REQUEST)


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=256), content_type=st.sampled_from(["", CLOUDEVENTS_JSON]))
def test_parse_request_never_raises_anything_but_invalid_request(
    body: bytes, content_type: str
) -> None:
    headers = {"Content-Type": content_type} if content_type else binary_headers()
    code = None
    try:
        parse_request(headers, body)
    except InvalidRequestError as err:
        code = err.code
    assert code is None or code in set(ErrorCode)


# -- replies --------------------------------------------------------------------------------------


def test_ok_reply_matches_the_documented_model() -> None:
    events = [{"seq": 3, "type": "incremented", "version": 1, "data": {"by": 2}}]
    reply = ok_reply("counter", "r", 3, events)
    model = OkReply.model_validate(reply)
    assert model.duplicate is False
    assert model.events[0].seq == 3
    for encoding in Encoding:
        body, headers = encode_reply(reply, encoding)
        assert headers == {"Content-Type": encoding.value, STATUS_HEADER: "ok"}
        assert decode(body, encoding) == reply


def test_error_reply_matches_the_documented_model() -> None:
    reply = error_reply_from("counter", "r", CommandRejected("no", details={"why": 1}))
    model = ErrorReply.model_validate(reply)
    assert model.error.code is ErrorCode.COMMAND_REJECTED
    assert model.error.details == {"why": 1}
    body, headers = encode_reply(reply, Encoding.MSGPACK)
    assert headers[STATUS_HEADER] == "error"
    assert decode(body, Encoding.MSGPACK)["error"]["code"] == "command_rejected"
    bare = error_reply(None, None, ErrorCode.INTERNAL, "boom")
    assert ErrorReply.model_validate(bare).error.details == {}


def test_error_codes_are_stable() -> None:
    assert {code.value for code in ErrorCode} >= {
        "malformed_request",
        "missing_attribute",
        "unsupported_content_type",
        "payload_too_large",
        "unknown_agent",
        "unknown_command",
        "invalid_payload",
        "command_rejected",
        "concurrency_conflict",
        "unavailable",
        "internal_error",
    }


# -- across a real server -------------------------------------------------------------------------


async def _through_server(nc: Client, headers: dict[str, str] | None, body: bytes) -> Msg:
    received: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()

    async def handler(msg: Msg) -> None:
        if not received.done():
            received.set_result(msg)

    sub = await nc.subscribe("tests.wire", cb=handler)
    try:
        await nc.publish("tests.wire", body, headers=headers)
        await nc.flush()
        return await asyncio.wait_for(received, 10)
    finally:
        await sub.unsubscribe()


async def test_binary_mode_headers_survive_nats(nc: Client) -> None:
    body = msgpack.packb({"by": 3})
    headers = binary_headers(
        **{"Content-Type": "application/msgpack", "ce-time": "2024-01-01T00:00:00Z"}
    )
    msg = await _through_server(nc, headers, body)
    envelope = parse_request(msg.headers, msg.data)
    assert envelope.id == "req-1"
    assert envelope.encoding is Encoding.MSGPACK
    assert envelope.time == "2024-01-01T00:00:00Z"
    assert decode(envelope.data, envelope.encoding) == {"by": 3}


async def test_structured_mode_survives_nats(nc: Client) -> None:
    msg = await _through_server(nc, STRUCTURED, structured(data={"by": 1.5}))
    envelope = parse_request(msg.headers, msg.data)
    assert envelope.id == "req-2"
    assert json.loads(envelope.data) == {"by": 1.5}


async def test_headerless_message_from_nats_is_rejected(nc: Client) -> None:
    msg = await _through_server(nc, None, b'{"by": 1}')
    assert rejected(msg.headers, msg.data).code is ErrorCode.MISSING_ATTRIBUTE
