"""Attributes with surrounding whitespace or control characters, and oversized header blocks:
refused with a stable code, dead-lettered (bounded), and never taken for another request."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from raw_nats import raw_nats_request
from support import Platform, collect_events, dead_letter, running_platform

from o_bus import send
from o_bus.config import RuntimeConfig
from o_bus.errors import ErrorCode, InvalidRequestError
from o_bus.store import layout
from o_bus.store.dead_letter import KEEP_HEADER_BYTES, KEEP_HEADER_VALUE
from o_bus.wire.codec import CLOUDEVENTS_JSON

MAX_HEADER_BYTES = 4096


@pytest.fixture
async def platform(nats_url: str) -> AsyncIterator[Platform]:
    config = RuntimeConfig(max_header_bytes=MAX_HEADER_BYTES)
    async with running_platform(nats_url, config=config, agents=("counter",)) as running:
        yield running


def structured(request_id: str, by: int, **attributes: Any) -> bytes:
    event: dict[str, Any] = {"specversion": "1.0", "id": request_id, "type": "increment"}
    event["source"] = "t/attrs"
    event.update(attributes)
    event["data"] = {"by": by}
    return json.dumps(event).encode()


async def send_structured(platform: Platform, body: bytes) -> dict[str, Any]:
    msg = await platform.nc.request(
        layout.request_subject("counter"), body, headers={"Content-Type": CLOUDEVENTS_JSON}
    )
    reply: dict[str, Any] = json.loads(msg.data)
    return reply


async def test_ids_differing_by_whitespace_are_not_duplicates(platform: Platform) -> None:
    """'abc' is served; 'abc ', ' abc', 'abc\\n'... are refused, never answered as 'abc'."""
    first = await send_structured(platform, structured("abc", 1))
    assert first["ok"] is True
    variants = ["abc ", " abc", "abc\n", "abc\r\n", "\tabc", "abc\u00a0", "abc\u2028", "ab\x00c"]
    for variant in variants:
        reply = await send_structured(platform, structured(variant, 10))
        assert reply["ok"] is False, variant
        assert reply["error"]["code"] == ErrorCode.MALFORMED_REQUEST.value, variant
        assert "duplicate" not in reply, variant
        letter = await dead_letter(platform.js, "counter", variant)
        assert (letter.headers or {})["O-Error-Code"] == ErrorCode.MALFORMED_REQUEST.value
    again = await send_structured(platform, structured("abc", 1))
    assert again["duplicate"] is True
    assert [json.loads(e.data)["by"] for e in await collect_events(platform.log("counter"))] == [1]


BAD_ATTRIBUTES: list[dict[str, Any]] = [
    {"source": "t/attrs "},
    {"source": "t/\x1battrs"},
    {"source": "s" * 513},
    {"subject": "\nsubject"},
    {"subject": 42},
    {"time": "2026-01-01T00:00:00Z\r\n"},
    {"time": "2" * 65},
    {"type": "increment\n"},
]


async def test_other_attributes_follow_the_same_rules(platform: Platform) -> None:
    for number, attributes in enumerate(BAD_ATTRIBUTES):
        request_id = f"attr-{number}"
        reply = await send_structured(platform, structured(request_id, 1, **attributes))
        assert reply["error"]["code"] == ErrorCode.MALFORMED_REQUEST.value, attributes
        await dead_letter(platform.js, "counter", request_id)
    assert (await platform.send("counter", "increment", {"by": 1}))["seq"] == 1


BINARY = b"ce-type: increment\r\nce-source: s\r\nce-specversion: 1.0\r\n"
BAD_BLOCKS = [
    b"ce-id: a\x01b\r\n" + BINARY,
    b"ce-id: a\x7fb\r\n" + BINARY,
    b"ce-id: ok-1\r\nce-type: increment\r\nce-source: s\x00\r\nce-specversion: 1.0\r\n",
    b"ce-id: ok-2\r\nce-subject: a\x1fb\r\n" + BINARY,
    b"ce-id: a\xc2\x85b\r\n" + BINARY,  # U+0085, a C1 control character, as UTF-8
]


async def test_control_characters_in_binary_headers(platform: Platform) -> None:
    for block in BAD_BLOCKS:
        raw = await raw_nats_request(
            platform.url, layout.request_subject("counter"), block, b'{"by": 1}'
        )
        assert json.loads(raw)["error"]["code"] == ErrorCode.MALFORMED_REQUEST.value, block
    assert (await platform.send("counter", "increment", {"by": 1}))["seq"] == 1


async def test_oversized_headers_are_refused_and_dead_lettered_truncated(
    platform: Platform,
) -> None:
    """More than 64 KiB of headers: payload_too_large (not unavailable), and a dead letter
    that keeps each header value short and the whole block bounded."""
    headers = {
        "ce-id": "big-headers",
        "ce-type": "increment",
        "ce-source": "t/attrs",
        "ce-specversion": "1.0",
        "x-pad": "p" * 70_000,
    } | {f"x-filler-{i}": "f" * 900 for i in range(40)}
    msg = await platform.nc.request(
        layout.request_subject("counter"), b'{"by": 1}', headers=headers, timeout=10
    )
    reply = json.loads(msg.data)
    assert reply["error"]["code"] == ErrorCode.PAYLOAD_TOO_LARGE.value
    assert reply["error"]["details"]["part"] == "headers"
    assert reply["error"]["details"]["limit"] == MAX_HEADER_BYTES
    assert reply["error"]["details"]["size"] > 100_000

    letter = await dead_letter(platform.js, "counter", "big-headers")
    kept = letter.headers or {}
    assert kept["O-Error-Code"] == ErrorCode.PAYLOAD_TOO_LARGE.value
    assert kept["x-pad"] == "p" * KEEP_HEADER_VALUE
    assert int(kept["O-Headers-Cut"]) >= 2  # x-pad, and fillers beyond the budget
    copied = sum(len(k) + len(v) + 4 for k, v in kept.items() if not k.startswith("O-"))
    assert copied <= KEEP_HEADER_BYTES
    assert (await platform.send("counter", "increment", {"by": 1}))["seq"] == 1


async def test_headers_just_over_the_limit_are_refused(platform: Platform) -> None:
    base = {"ce-id": "edge", "ce-type": "increment", "ce-source": "s", "ce-specversion": "1.0"}
    used = sum(len(k) + len(v) + 4 for k, v in base.items())
    room = MAX_HEADER_BYTES - used - len("x-pad") - 4
    fits = await platform.nc.request(
        layout.request_subject("counter"), b'{"by": 2}', headers=base | {"x-pad": "q" * room}
    )
    assert json.loads(fits.data)["ok"] is True
    over = base | {"ce-id": "edge-2", "x-pad": "q" * (room + 1)}
    refused = await platform.nc.request(layout.request_subject("counter"), b"{}", headers=over)
    assert json.loads(refused.data)["error"]["code"] == ErrorCode.PAYLOAD_TOO_LARGE.value


async def test_a_header_name_no_client_can_send_back_is_left_out(platform: Platform) -> None:
    block = b"ce-id: odd-name\r\nx(y): 1\r\nce-type: increment\r\nce-source: s\r\n"
    raw = await raw_nats_request(platform.url, layout.request_subject("counter"), block, b"{}")
    assert json.loads(raw)["error"]["code"] == ErrorCode.MISSING_ATTRIBUTE.value
    letter = await dead_letter(platform.js, "counter", "odd-name")
    kept = letter.headers or {}
    assert "x(y)" not in kept
    assert kept["O-Headers-Cut"] == "1"


async def test_the_client_refuses_what_nats_would_rewrite(platform: Platform) -> None:
    """nats-py trims header values; o_bus.send refuses such an id instead of sending another."""
    for request_id in ["abc ", "abc\n", "a\x00c", " "]:
        with pytest.raises(InvalidRequestError) as caught:
            await send(platform.nc, "counter", "increment", {"by": 1}, request_id=request_id)
        assert caught.value.code is ErrorCode.MALFORMED_REQUEST
    with pytest.raises(InvalidRequestError):
        await send(platform.nc, "counter", "increment", {"by": 1}, source="me\r\n")
