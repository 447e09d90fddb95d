"""Refusing a flood as it comes off the socket, before the NATS client builds a message.

For each message, the NATS client matches its control line with regular expressions, copies
its header block and body, parses the headers into a dict, builds a message object and queues
it for the subscription's task: over ten microseconds a request in Python, nearly all of the
time the splitter spends on a fire-and-forget request it then refuses at once. Read at that
cost, a flood keeps the splitters busy, so everyone else's requests wait behind it in the
connection's buffers and for a CPU. Here the decision that would refuse such a request is taken
on the bytes as they are read: the sender (``ce-source``) is found in the header block and the
request is counted as dropped without anything being copied or built.

Every message of the intake subscription that is not refused here is handed to the splitter as
soon as it is read (``deliver``), in the order it came, instead of waiting in the client's
queue for the subscription's task: what the splitter takes changes its next decision at once,
so a flood that is let in for a moment is let in by the request, not by the socket read.

Only the canonical form is decided early: a message of the intake subscription sent without a
reply subject, with exactly one ``ce-source`` header written as ``ce-source:`` at the start of a
line. Every other message is built exactly as the client's own parser would build it, and
the splitter applies the same rules to the parsed headers, so the early path changes how fast a
request is refused, never whether it is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Final, Protocol

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.protocol.parser import AWAITING_CONTROL_LINE, MAX_CONTROL_LINE_SIZE, Parser

__all__ = ["Decide", "Deliver", "IntakeParser", "source_in"]

_SOURCE: Final = b"ce-source"
_SOURCE_LINE: Final = b"\r\nce-source:"
_CRLF: Final = b"\r\n"
_HMSG: Final = b"HMSG "
_MSG: Final = b"MSG "


class Decide(Protocol):
    def __call__(self, agent: str, sender: str) -> str | None:
        """The scope a fire-and-forget request is refused by, or None to take it."""


Deliver = Callable[[Msg], None]


def source_in(buf: bytes | bytearray, start: int, end: int) -> bytes | None:
    """The ``ce-source`` of the header block ``buf[start:end]``, as sent, when it is written
    once in canonical form (its value stripped, as the client's parser does); None when only
    full parsing can tell."""
    if buf.count(_SOURCE, start, end) != 1:
        return None
    at = buf.find(_SOURCE_LINE, start, end)
    if at < 0:
        return None
    value_at = at + len(_SOURCE_LINE)
    value_end = buf.find(_CRLF, value_at, end)
    if value_end < 0:
        return None
    return bytes(buf[value_at:value_end]).strip()


class IntakeParser:
    """Stands in for a connection's protocol parser: messages and their frames are read here,
    fire-and-forget requests of the watched subscription that ``decide`` refuses are counted
    with ``dropped(scope, count)`` and go no further, the watched subscription's other
    messages go to ``deliver`` as they are read, and everything else reaches the client as
    before. The original parser keeps all state and parses whatever is not a message."""

    def __init__(
        self, parser: Parser, prefix_len: int, decide: Decide, dropped: Callable[[str, int], None]
    ) -> None:
        self.parser = parser
        self.prefix_len = prefix_len
        self.decide = decide
        self.dropped = dropped
        self.sid = -1
        self._deliver: Deliver | None = None
        self._client_process_msg = parser.nc._process_msg

    @classmethod
    def install(
        cls, nc: Client, prefix_len: int, decide: Decide, dropped: Callable[[str, int], None]
    ) -> IntakeParser:
        """Put one in front of ``nc``'s parser; ``watch`` then names the subscription."""
        # nats-py has no hook between its parser and its message objects: its read loop
        # calls the connection's parser, so that is replaced by one that keeps its state.
        intake = cls(nc._ps, prefix_len, decide, dropped)
        nc._ps = intake  # type: ignore[assignment]
        # The client's parser hands messages on too (those after another operation in a
        # read): they must reach ``deliver`` by the same way, in order.
        nc._process_msg = intake.process_msg  # type: ignore[method-assign]
        return intake

    def watch(self, sid: int, deliver: Deliver) -> None:
        """Decide early for subscription ``sid`` and hand ``deliver`` its other messages."""
        self.sid, self._deliver = sid, deliver

    def unwatch(self) -> None:
        """From now on the subscription's messages reach it through the client again."""
        self.sid, self._deliver = -1, None

    async def process_msg(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
    ) -> None:
        """Where the client's parser and this one hand a message on."""
        deliver = self._deliver
        if sid != self.sid or deliver is None:
            await self._client_process_msg(sid, subject, reply, data, headers)
            return
        nc = self.parser.nc
        parsed = await nc._process_headers(headers) if headers else None
        deliver(nc._build_message(sid, subject, reply, data, parsed))

    def reset(self) -> None:
        self.parser.reset()

    async def parse(self, data: bytes = b"") -> None:
        parser = self.parser
        if parser.state != AWAITING_CONTROL_LINE:
            # The client's parser is inside a message it started: give it just the rest.
            missing = parser.needed + len(_CRLF) - len(parser.buf)
            await parser.parse(data[:missing])
            if parser.state != AWAITING_CONTROL_LINE:
                return
            data = data[missing:]
        buf = parser.buf
        buf.extend(data)
        pos, other = await self._messages(buf)
        if pos:
            del buf[:pos]
        if other:
            await parser.parse()

    async def _messages(self, buf: bytearray) -> tuple[int, bool]:
        """Hand on or drop the whole messages at the start of ``buf``: where they end, and
        whether what follows is something else than a message (or its start)."""
        dropped: Counter[str] = Counter()
        try:
            return await self._read(buf, dropped)
        finally:
            for scope, count in dropped.items():
                self.dropped(scope, count)

    async def _read(self, buf: bytearray, dropped: Counter[str]) -> tuple[int, bool]:
        refused: dict[tuple[bytes, bytes], str] = {}  # what was refused since the last delivery
        size = len(buf)
        pos = 0
        while pos < size:
            if buf.startswith(_HMSG, pos):
                args_at, has_headers = pos + len(_HMSG), True
            elif buf.startswith(_MSG, pos):
                args_at, has_headers = pos + len(_MSG), False
            else:
                return pos, True
            eol = buf.find(_CRLF, args_at)
            if eol < 0:
                return pos, size - pos > MAX_CONTROL_LINE_SIZE
            # subject sid [reply] [header_len] total_len
            args = bytes(buf[args_at:eol]).split()
            without_sizes = len(args) - (2 if has_headers else 1)
            if without_sizes not in (2, 3):
                return pos, True  # the client's parser says what is wrong with it
            try:
                subject, sid, total = args[0], int(args[1]), int(args[-1])
                header_len = int(args[-2]) if has_headers else 0
            except ValueError:
                return pos, True
            reply = args[2] if without_sizes == 3 else b""
            body_at = eol + 2
            end = body_at + total
            if end + 2 > size:
                return pos, False
            pos = end + 2
            if header_len and sid == self.sid and not reply:
                sender = source_in(buf, body_at, body_at + header_len)
                if sender is not None:
                    # Nothing the decision depends on changes until a message is handed on.
                    scope = refused.get((subject, sender))
                    if scope is None:
                        scope = self.decide(
                            subject[self.prefix_len :].decode("utf-8", "replace"),
                            sender.decode("utf-8", "replace"),
                        )
                    if scope is not None:
                        refused[subject, sender] = scope
                        dropped[scope] += 1
                        continue
            headers = bytes(buf[body_at : body_at + header_len]) if header_len else None
            payload = bytes(buf[body_at + header_len : end])
            refused.clear()
            await self.process_msg(sid, subject, reply, payload, headers)
        return pos, False
