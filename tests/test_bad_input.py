"""Bad and hostile input: every rejection gets a stable error code, lands in the dead-letter
stream with the reason, and changes nothing: the agent keeps serving and its log is intact."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import pytest
from nats.js.api import RawStreamMsg
from raw_nats import raw_nats_request
from support import Platform, collect_events, dead_letter, read_subject, running_platform

from o_bus.config import RuntimeConfig
from o_bus.errors import ErrorCode
from o_bus.store import layout
from o_bus.store.dead_letter import KEEP_BYTES, KEEP_HEADER_VALUE
from o_bus.wire.codec import CLOUDEVENTS_JSON, Encoding

MAX_REQUEST_BYTES = 1024
BEFORE = [1, 2, 3]  # accepted before the bad input; must survive it


@pytest.fixture
async def platform(nats_url: str) -> AsyncIterator[Platform]:
    config = RuntimeConfig(max_request_bytes=MAX_REQUEST_BYTES)
    async with running_platform(nats_url, config=config) as running:
        yield running


def ce(request_id: str, **overrides: str | None) -> dict[str, str]:
    headers: dict[str, str | None] = {
        "ce-id": request_id,
        "ce-type": "increment",
        "ce-source": "tests/bad-input",
        "ce-specversion": "1.0",
        "Content-Type": "application/json",
    }
    headers.update(overrides)
    return {k: v for k, v in headers.items() if v is not None}


MSGPACK = "application/msgpack"
MALFORMED = frozenset({ErrorCode.MALFORMED_REQUEST})
INVALID = frozenset({ErrorCode.INVALID_PAYLOAD})


@dataclass(frozen=True)
class Case:
    agent: str
    headers: dict[str, str] | None
    body: bytes
    codes: frozenset[ErrorCode]
    dlq_agent: str | None = "counter"

    @property
    def request_id(self) -> str | None:
        return (self.headers or {}).get("ce-id")


CASES: dict[str, Case] = {
    "json-garbage": Case(
        "counter",
        ce("json-garbage"),
        b"{not json at all",
        MALFORMED,
    ),
    "json-truncated": Case("counter", ce("json-truncated"), b'{"by": 1', MALFORMED),
    "json-non-utf8": Case(
        "counter",
        ce("json-non-utf8"),
        b'{"by": "\xff\xfe"}',
        MALFORMED,
    ),
    "json-bomb": Case("counter", ce("json-bomb"), b"[" * 500 + b"]" * 500, MALFORMED),
    "missing-ce-headers": Case(
        "counter",
        {"Content-Type": "application/json"},
        b'{"by": 1}',
        frozenset({ErrorCode.MISSING_ATTRIBUTE}),
    ),
    "no-headers": Case("counter", None, b'{"by": 1}', frozenset({ErrorCode.MISSING_ATTRIBUTE})),
    "missing-source": Case(
        "counter",
        ce("missing-source", **{"ce-source": None}),
        b"{}",
        frozenset({ErrorCode.MISSING_ATTRIBUTE}),
    ),
    "bad-specversion": Case(
        "counter", ce("bad-specversion", **{"ce-specversion": "0.3"}), b"{}", MALFORMED
    ),
    "bad-command-name": Case(
        "counter", ce("bad-command-name", **{"ce-type": "../../etc/passwd"}), b"{}", MALFORMED
    ),
    "unknown-command": Case(
        "counter",
        ce("unknown-command", **{"ce-type": "decrement"}),
        b"{}",
        frozenset({ErrorCode.UNKNOWN_COMMAND}),
    ),
    "unsupported-content-type": Case(
        "counter",
        ce("unsupported-content-type", **{"Content-Type": "text/plain"}),
        b"by=1",
        frozenset({ErrorCode.UNSUPPORTED_CONTENT_TYPE}),
    ),
    "invalid-payload": Case(
        "counter", ce("invalid-payload"), b'{"by": "lots"}', frozenset({ErrorCode.INVALID_PAYLOAD})
    ),
    "payload-extra-field": Case(
        "counter",
        ce("payload-extra-field"),
        b'{"by": 1, "admin": true}',
        frozenset({ErrorCode.INVALID_PAYLOAD}),
    ),
    "payload-out-of-range": Case(
        "counter",
        ce("payload-out-of-range"),
        b'{"by": 1e300}',
        frozenset({ErrorCode.INVALID_PAYLOAD}),
    ),
    "payload-not-an-object": Case(
        "counter", ce("payload-not-an-object"), b"[1, 2]", frozenset({ErrorCode.INVALID_PAYLOAD})
    ),
    "oversized": Case(
        "counter",
        ce("oversized"),
        b'{"by": 1, "pad": "' + b"x" * MAX_REQUEST_BYTES + b'"}',
        frozenset({ErrorCode.PAYLOAD_TOO_LARGE}),
    ),
    "unknown-agent": Case(
        "ghost", ce("unknown-agent"), b"{}", frozenset({ErrorCode.UNKNOWN_AGENT}), dlq_agent=None
    ),
    "very-long-id": Case("counter", ce("i" * 2_000), b"{}", MALFORMED),
    "msgpack-garbage": Case(
        "counter", ce("msgpack-garbage", **{"Content-Type": MSGPACK}), b"\xc1\xc1\xc1", MALFORMED
    ),
    "msgpack-truncated": Case(
        "counter", ce("msgpack-truncated", **{"Content-Type": MSGPACK}), b"\x82\xa2by", MALFORMED
    ),
    "msgpack-non-utf8-string": Case(
        "counter",
        ce("msgpack-non-utf8-string", **{"Content-Type": MSGPACK}),
        b"\x81\xa2by\xa2\xff\xfe",
        MALFORMED,
    ),
    "msgpack-binary-value": Case(
        "counter",
        ce("msgpack-binary-value", **{"Content-Type": MSGPACK}),
        msgpack.packb({"by": b"\xff\xfe"}),
        INVALID,
    ),
    "msgpack-deep-nesting": Case(
        "counter",
        ce("msgpack-deep-nesting", **{"Content-Type": MSGPACK}),
        b"\x91" * 500 + b"\xc0",
        INVALID,
    ),
    "msgpack-int-keys": Case(
        "counter", ce("msgpack-int-keys", **{"Content-Type": MSGPACK}), b"\x81\x01\x02", MALFORMED
    ),
    "structured-garbage": Case(
        "counter", {"Content-Type": CLOUDEVENTS_JSON}, b"\xff\xfe{{{", MALFORMED
    ),
    "structured-bomb": Case(
        "counter", {"Content-Type": CLOUDEVENTS_JSON}, b"[" * 500 + b"]" * 500, MALFORMED
    ),
    "structured-missing-id": Case(
        "counter",
        {"Content-Type": CLOUDEVENTS_JSON},
        json.dumps({"specversion": "1.0", "type": "increment", "source": "s"}).encode(),
        frozenset({ErrorCode.MISSING_ATTRIBUTE}),
    ),
}


async def raw_request(
    platform: Platform, agent: str, headers: dict[str, str] | None, body: bytes
) -> tuple[dict[str, str], dict[str, Any]]:
    msg = await platform.nc.request(
        layout.request_subject(agent), body, headers=headers, timeout=10
    )
    reply_headers = msg.headers or {}
    if reply_headers.get("Content-Type") == Encoding.MSGPACK.value:
        return reply_headers, msgpack.unpackb(msg.data)
    return reply_headers, json.loads(msg.data)


async def accepted_before(platform: Platform) -> None:
    for by in BEFORE:
        assert (await platform.send("counter", "increment", {"by": by}))["ok"] is True


async def assert_untouched_and_serving(platform: Platform, extra: int = 0) -> None:
    """The events accepted before are all there, and a valid request is served next."""
    reply = await platform.send("counter", "increment", {"by": 100})
    assert reply["ok"] is True
    assert reply["seq"] == len(BEFORE) + extra + 1
    stored = await collect_events(platform.log("counter"))
    assert [e.seq for e in stored] == list(range(1, len(BEFORE) + extra + 2))
    assert [json.loads(e.data)["by"] for e in stored[: len(BEFORE)]] == BEFORE


def check_dead_letter(letter: RawStreamMsg, code: str, body: bytes) -> None:
    headers = letter.headers or {}
    assert headers["O-Error-Code"] == code
    assert headers["O-Error-Message"]
    assert int(headers["O-Original-Size"]) == len(body)
    assert (letter.data or b"") == body[:KEEP_BYTES]


@pytest.mark.parametrize("name", list(CASES))
async def test_bad_request_is_rejected_recorded_and_harmless(platform: Platform, name: str) -> None:
    case = CASES[name]
    await accepted_before(platform)

    reply_headers, reply = await raw_request(platform, case.agent, case.headers, case.body)
    assert reply["ok"] is False
    assert reply_headers["O-Status"] == "error"
    assert reply["error"]["message"]
    assert ErrorCode(reply["error"]["code"]) in case.codes, reply["error"]

    letter = await dead_letter(platform.js, case.dlq_agent, case.request_id)
    check_dead_letter(letter, reply["error"]["code"], case.body)

    await assert_untouched_and_serving(platform)


async def test_a_barrage_of_bad_input_changes_nothing(platform: Platform) -> None:
    """Every case above, back to back: each is answered with an error and dead-lettered."""
    await accepted_before(platform)
    replies = await asyncio.gather(
        *(raw_request(platform, c.agent, c.headers, c.body) for c in CASES.values())
    )
    known = {code.value for code in ErrorCode}
    for (name, case), (_, reply) in zip(CASES.items(), replies, strict=True):
        assert reply["ok"] is False, name
        assert reply["error"]["code"] in known, name
        if case.request_id is not None:
            letter = await dead_letter(platform.js, case.dlq_agent, case.request_id)
            check_dead_letter(letter, reply["error"]["code"], case.body)
    await assert_untouched_and_serving(platform)


async def test_long_request_id_is_bounded_in_the_dead_letter(platform: Platform) -> None:
    request_id = "z" * 20_000  # more than the header block may hold
    await raw_request(platform, "counter", ce(request_id), b"{}")
    letter = await dead_letter(platform.js, "counter", request_id)
    headers = letter.headers or {}
    assert len(headers["O-Request-Id"]) <= 256
    assert headers["O-Error-Code"] == ErrorCode.PAYLOAD_TOO_LARGE.value
    assert len(headers["ce-id"]) <= KEEP_HEADER_VALUE


async def test_oversized_dead_letter_keeps_the_size(nats_url: str) -> None:
    """Above the dead-letter keep limit the body is truncated, and its full size recorded."""
    config = RuntimeConfig(max_request_bytes=KEEP_BYTES)
    async with running_platform(nats_url, config=config, agents=("counter",)) as platform:
        body = b'{"pad": "' + b"y" * (KEEP_BYTES + 500) + b'"}'
        _, reply = await raw_request(platform, "counter", ce("big"), body)
        assert reply["error"]["code"] == ErrorCode.PAYLOAD_TOO_LARGE.value
        assert reply["error"]["details"] == {"size": len(body), "limit": KEEP_BYTES}
        letter = await dead_letter(platform.js, "counter", "big")
        check_dead_letter(letter, ErrorCode.PAYLOAD_TOO_LARGE.value, body)
        assert len(letter.data or b"") == KEEP_BYTES


async def test_resending_a_rejected_request_gets_the_same_error(platform: Platform) -> None:
    await accepted_before(platform)
    headers = ce("rejected-once")
    _, first = await raw_request(platform, "counter", headers, b'{"by": "nope"}')
    assert first["error"]["code"] == ErrorCode.INVALID_PAYLOAD.value
    await dead_letter(platform.js, "counter", "rejected-once")

    _, again = await raw_request(platform, "counter", headers, b'{"by": "nope"}')
    assert again["ok"] is False
    assert again["error"]["code"] == first["error"]["code"]

    await platform.restart_host()  # the answer now comes from the dead-letter stream
    _, after_restart = await raw_request(platform, "counter", headers, b'{"by": 5}')
    assert after_restart["ok"] is False
    assert after_restart["error"]["code"] == first["error"]["code"]
    await assert_untouched_and_serving(platform)


async def test_error_reply_follows_the_request_encoding(platform: Platform) -> None:
    headers = ce("mp-bad", **{"Content-Type": MSGPACK})
    reply_headers, reply = await raw_request(
        platform, "counter", headers, msgpack.packb({"by": "x"})
    )
    assert reply_headers["Content-Type"] == MSGPACK
    assert reply["error"]["code"] == ErrorCode.INVALID_PAYLOAD.value

    headers = ce("mp-bad-2", **{"Content-Type": MSGPACK, "ce-specversion": "9"})
    reply_headers, reply = await raw_request(platform, "counter", headers, b"\x80")
    assert reply_headers["Content-Type"] == MSGPACK
    assert reply["error"]["code"] == ErrorCode.MALFORMED_REQUEST.value


# -- bytes no client library would send ----------------------------------------------------------


@pytest.mark.parametrize(
    ("header_block", "code"),
    [
        (
            b"ce-id: raw-1\r\nce-type: incr\xff\xfement\r\nce-source: s\r\nce-specversion: 1.0\r\n",
            ErrorCode.MALFORMED_REQUEST,
        ),
        (
            b"ce-id: raw-2\r\nce-type: increment\r\nce-source: s\r\nce-specversion: 1.\xff\r\n",
            ErrorCode.MALFORMED_REQUEST,
        ),
        (
            b"ce-id: raw-3\r\nce-type: increment\r\nce-source: s\r\nce-specversion: 1.0\r\n"
            b"Content-Type: application/\xc0\xafjson\r\n",
            ErrorCode.UNSUPPORTED_CONTENT_TYPE,
        ),
        (b"garbage without a colon\r\n\xff\xff\r\n", ErrorCode.MISSING_ATTRIBUTE),
    ],
    ids=["non-utf8-type", "non-utf8-specversion", "non-utf8-content-type", "no-header-syntax"],
)
async def test_non_utf8_headers(platform: Platform, header_block: bytes, code: ErrorCode) -> None:
    await accepted_before(platform)
    raw = await raw_nats_request(
        platform.url, layout.request_subject("counter"), header_block, b'{"by": 1}'
    )
    reply = json.loads(raw)
    assert reply["ok"] is False
    assert reply["error"]["code"] == code.value
    await assert_untouched_and_serving(platform)


async def test_non_utf8_request_id_is_served_once(platform: Platform) -> None:
    """An id that is not UTF-8 still identifies the request: a re-send is a duplicate."""
    await accepted_before(platform)
    block = b"ce-id: id-\xff\xfe\r\nce-type: increment\r\nce-source: s\r\nce-specversion: 1.0\r\n"
    subject = layout.request_subject("counter")
    first = json.loads(await raw_nats_request(platform.url, subject, block, b'{"by": 7}'))
    again = json.loads(await raw_nats_request(platform.url, subject, block, b'{"by": 7}'))
    assert first["ok"] is True
    assert again["duplicate"] is True
    assert again["seq"] == first["seq"]
    await assert_untouched_and_serving(platform, extra=1)


async def test_restart_does_not_dead_letter_a_request_twice(platform: Platform) -> None:
    await accepted_before(platform)
    _, reply = await raw_request(platform, "counter", ce("rejected"), b'{"by": "x"}')
    assert reply["error"]["code"] == ErrorCode.INVALID_PAYLOAD.value
    await dead_letter(platform.js, "counter", "rejected")

    await platform.restart_host()
    await assert_untouched_and_serving(platform)  # the WAL is consumed past the rejection
    await platform.stop_host()  # flushes any dead letter still being written
    letters = await read_subject(
        platform.js, layout.DLQ_STREAM, layout.dlq_subject("counter", "rejected")
    )
    assert len(letters) == 1


async def test_an_event_with_no_applier_is_an_internal_error_and_stores_nothing(
    nats_url: str,
) -> None:
    spec = str(Path(__file__).parent / "agents_for_tests" / "unapplied.py") + ":unapplied"
    async with running_platform(
        nats_url, agents=("unapplied",), extra_definitions=[spec]
    ) as platform:
        reply = await platform.send("unapplied", "note", {"text": "x"})
        assert reply["ok"] is False
        assert reply["error"]["code"] == ErrorCode.INTERNAL.value
        assert "no applier for event 'noted'" in reply["error"]["message"]
        after = await platform.send("unapplied", "ping")
        assert after["ok"] is True
        assert after["seq"] == 1
        assert [e.type for e in await collect_events(platform.log("unapplied"))] == ["pinged"]
