"""The splitter's early refusal: what it drops, and that everything else reaches the splitter
or the NATS client exactly as the client's own parser delivers it, in order, however the bytes
are cut."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from nats.errors import ProtocolError
from nats.protocol.parser import Parser

from o_bus.handlers.splitter.early_refusal import IntakeParser, source_in

INTAKE_SID, OTHER_SID = 1, 2
PREFIX_LEN = len("o.req.")


def hmsg(
    sid: int, *, source: bytes | None = b"flood", reply: bytes = b"", extra: bytes = b""
) -> bytes:
    lines = [b"NATS/1.0", b"ce-id: x1", b"ce-type: increment"]
    if source is not None:
        lines.append(b"ce-source: " + source)
    header = b"\r\n".join(lines) + b"\r\n" + extra + b"\r\n"
    body = b'{"by": 1}'
    args = b" ".join(a for a in (b"o.req.counter", str(sid).encode(), reply) if a)
    sizes = b"%d %d" % (len(header), len(header) + len(body))
    return b"HMSG " + args + b" " + sizes + b"\r\n" + header + body + b"\r\n"


def msg(sid: int, body: bytes = b"plain") -> bytes:
    return b"MSG o.evt.counter %d %d\r\n%s\r\n" % (sid, len(body), body)


class Recorder:
    """Stands in for the NATS client: records the messages its parser hands it, and builds
    a message as the tuple of what it was built from."""

    def __init__(self) -> None:
        self.messages: list[tuple[Any, ...]] = []
        self._ps = Parser(self)

    async def _process_msg(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
    ) -> None:
        self.messages.append((sid, bytes(subject), bytes(reply), data, headers))

    async def _process_headers(self, headers: bytes) -> bytes:
        return headers

    def _build_message(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
    ) -> tuple[Any, ...]:
        return (sid, bytes(subject), bytes(reply), data, headers)


class Intake:
    """The intake parser over a recorder, refusing the senders in ``refuse``; what it hands
    the splitter and what the client still gets go to one list, in order."""

    def __init__(self, refuse: set[str]) -> None:
        self.client = Recorder()
        self.asked: list[tuple[str, str]] = []
        self.dropped: Counter[str] = Counter()
        self.taken: list[tuple[Any, ...]] = []  # what reached the splitter directly

        def decide(agent: str, sender: str) -> str | None:
            self.asked.append((agent, sender))
            return "sender" if sender in refuse else None

        def dropped(scope: str, count: int) -> None:
            self.dropped[scope] += count

        def take(message: Any) -> None:
            self.taken.append(message)
            self.client.messages.append(message)

        client: Any = self.client
        self.parser = IntakeParser.install(client, PREFIX_LEN, decide, dropped)
        self.parser.watch(INTAKE_SID, take)

    def delivered(self) -> list[tuple[Any, ...]]:
        return self.client.messages


async def feed(parser: Any, data: bytes, step: int) -> None:
    for at in range(0, len(data), step):
        await parser.parse(data[at : at + step])


def test_the_sender_is_read_only_from_one_canonical_header() -> None:
    block = b"NATS/1.0\r\nce-id: 1\r\nce-source:  app-1 \r\n\r\n"
    assert source_in(block, 0, len(block)) == b"app-1"
    twice = b"NATS/1.0\r\nce-source: a\r\nce-source: b\r\n\r\n"
    assert source_in(twice, 0, len(twice)) is None  # the client keeps the last: parse it
    spaced = b"NATS/1.0\r\nce-source : a\r\n\r\n"
    assert source_in(spaced, 0, len(spaced)) is None
    inside = b"NATS/1.0\r\nx: ce-source\r\n\r\n"
    assert source_in(inside, 0, len(inside)) is None
    assert source_in(b"NATS/1.0\r\nce-id: 1\r\n\r\n", 0, 22) is None


async def test_a_refused_fire_and_forget_request_goes_no_further() -> None:
    intake = Intake(refuse={"flood"})
    await intake.parser.parse(hmsg(INTAKE_SID) * 3 + hmsg(INTAKE_SID, source=b"calm"))
    assert intake.dropped == {"sender": 3}
    delivered = intake.delivered()
    assert [b"ce-source: calm" in d[4] for d in delivered] == [True]
    # One decision per sender until a message is handed on: the state cannot change before.
    assert intake.asked == [("counter", "flood"), ("counter", "calm")]


async def test_requests_it_cannot_decide_are_handed_on_for_the_full_rules() -> None:
    intake = Intake(refuse={"flood"})
    await intake.parser.parse(
        hmsg(INTAKE_SID, reply=b"_INBOX.a.1")  # has a reply: it is answered, not dropped
        + hmsg(OTHER_SID)  # not the intake subscription
        + hmsg(INTAKE_SID, extra=b"ce-source: twice\r\n")  # two ce-source headers
        + hmsg(INTAKE_SID, source=None)  # none
    )
    assert not intake.dropped
    assert len(intake.delivered()) == 4
    assert intake.asked == []


@pytest.mark.parametrize("step", [1, 7, 100, 4096, 1 << 20])
async def test_what_is_handed_on_is_what_the_client_parser_delivers(step: int) -> None:
    stream = (
        hmsg(INTAKE_SID, source=b"calm") * 20
        + b"+OK\r\n"
        + msg(OTHER_SID)
        + hmsg(INTAKE_SID, reply=b"_INBOX.a.2")
        + msg(INTAKE_SID, b"")
        + hmsg(OTHER_SID, source=b"flood")
    ) * 5
    intake = Intake(refuse=set())
    await feed(intake.parser, stream, step)
    plain = Recorder()
    await feed(Parser(plain), stream, step)
    expected = plain.messages
    assert intake.delivered() == expected
    assert len(expected) == 5 * 24
    # The intake subscription's, including those the client's parser read after "+OK",
    # went straight to the splitter; the rest to the client.
    assert intake.taken == [m for m in expected if m[0] == INTAKE_SID]


async def test_after_unwatch_the_client_gets_the_subscription_again() -> None:
    intake = Intake(refuse={"flood"})
    intake.parser.unwatch()
    await intake.parser.parse(hmsg(INTAKE_SID) + hmsg(INTAKE_SID, source=b"calm"))
    assert intake.taken == []
    assert not intake.dropped  # nothing decided early any more
    assert len(intake.delivered()) == 2


async def test_a_malformed_frame_is_refused_as_the_client_would() -> None:
    intake = Intake(refuse=set())
    with pytest.raises(ProtocolError):
        await intake.parser.parse(b"HMSG o.req.counter 1 x y\r\n")
    # A frame cut before its end waits for the rest.
    frame = hmsg(INTAKE_SID, source=b"calm")
    intake = Intake(refuse=set())
    await intake.parser.parse(frame[:-5])
    assert intake.delivered() == []
    await intake.parser.parse(frame[-5:])
    assert len(intake.delivered()) == 1


async def test_a_reconnect_resets_the_parser_underneath() -> None:
    intake = Intake(refuse=set())
    await intake.parser.parse(hmsg(INTAKE_SID)[:30])
    intake.parser.reset()
    await intake.parser.parse(hmsg(INTAKE_SID, source=b"calm"))
    assert len(intake.delivered()) == 1
