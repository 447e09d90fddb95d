"""The raw floor: the same request path in plain nats-py, with no framework and no validation.

Same process layout and the same durable writes per request as the project path:

* ``python -m o_bus_bench.raw splitter``: takes ``raw.req.<agent>``, appends the request to
  stream ``RAW_WAL`` (pipelined: never waits for the acknowledgement, which a single inbox
  subscription counts) with ``Nats-Msg-Id`` for de-duplication, like the splitter.
* ``python -m o_bus_bench.raw agent``: reads ``RAW_WAL`` with a callback-based ordered
  consumer, adds ``by`` to a counter, appends one event per request to ``RAW_EVT`` (pipelined),
  and replies straight to the client when that event's acknowledgement arrives. With
  ``--agent NAME`` it reads only that agent's requests, as the agent process of ``NAME`` does
  (one raw agent process per agent).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import uuid
from typing import Final

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from o_bus.common.connect import connect
from o_bus.common.event_loop import run
from o_bus.common.signals import run_until_signalled

__all__ = [
    "RAW_EVENTS_STREAM",
    "RAW_REQUEST_PREFIX",
    "RAW_WAL_STREAM",
    "provision_raw",
    "status_subject",
]

log = logging.getLogger(__name__)

RAW_REQUEST_PREFIX: Final = "raw.req."
RAW_WAL_PREFIX: Final = "raw.wal."
RAW_EVENT_PREFIX: Final = "raw.evt."
RAW_WAL_STREAM: Final = "RAW_WAL"
RAW_EVENTS_STREAM: Final = "RAW_EVT"
REPLY_HEADER: Final = "Raw-Reply"
DUPLICATE_WINDOW: Final = 120.0


def status_subject(role: str, agent: str | None = None) -> str:
    """The subject a raw service answers when ready (``agent``: a raw agent of one agent)."""
    return f"raw.svc.{role}.status" if agent is None else f"raw.svc.{role}.{agent}.status"


async def provision_raw(js: JetStreamContext, replicas: int = 1) -> None:
    """Declare the raw path's streams (file storage and replicas, like the project's)."""
    for config in (
        StreamConfig(
            name=RAW_WAL_STREAM,
            subjects=[RAW_WAL_PREFIX + ">"],
            storage=StorageType.FILE,
            duplicate_window=DUPLICATE_WINDOW,
            num_replicas=replicas,
        ),
        StreamConfig(
            name=RAW_EVENTS_STREAM,
            subjects=[RAW_EVENT_PREFIX + ">"],
            storage=StorageType.FILE,
            num_replicas=replicas,
        ),
    ):
        try:
            await js.stream_info(config.name)  # type: ignore[arg-type]
        except NotFoundError:
            await js.add_stream(config)


class _AckCounter:
    """Counts refused publishes; logs the first few."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.refused = 0

    def check(self, data: bytes) -> bool:
        if b'"error"' not in data:
            return True
        self.refused += 1
        if self.refused <= 5:
            log.error("%s refused: %s", self.what, data.decode(errors="replace"))
        return False


async def serve_splitter(nc: Client) -> None:
    acks = _AckCounter("raw WAL append")
    ack_subject = f"_ORAWWAL.{uuid.uuid4().hex}"
    prefix_len = len(RAW_REQUEST_PREFIX)
    publish = nc.publish

    async def on_ack(msg: Msg) -> None:
        acks.check(msg.data)

    async def on_request(msg: Msg) -> None:
        agent = msg.subject[prefix_len:]
        headers = msg.headers or {}
        headers[REPLY_HEADER] = msg.reply
        headers["Nats-Msg-Id"] = f"{agent}:{headers.get('ce-id', '')}"
        await publish(RAW_WAL_PREFIX + agent, msg.data, reply=ack_subject, headers=headers)

    await nc.subscribe(ack_subject, cb=on_ack, pending_msgs_limit=1_000_000)
    await nc.subscribe(
        RAW_REQUEST_PREFIX + "*", queue="raw-splitter", cb=on_request, pending_msgs_limit=65536
    )


async def serve_agent(nc: Client, js: JetStreamContext, agent: str | None = None) -> None:
    """Serve every agent's requests, or only ``agent``'s."""
    acks = _AckCounter("raw event append")
    ack_prefix = f"_ORAWEVT.{uuid.uuid4().hex}."
    prefix_len = len(ack_prefix)
    wal_prefix_len = len(RAW_WAL_PREFIX)
    values: dict[str, int] = {}
    waiting: dict[int, str] = {}
    counter = {"seq": 0}
    publish = nc.publish

    async def on_ack(msg: Msg) -> None:
        seq = int(msg.subject[prefix_len:])
        reply_to = waiting.pop(seq, None)
        body = b'{"ok":true,"seq":%d}' % seq if acks.check(msg.data) else b'{"ok":false}'
        if reply_to:
            await publish(reply_to, body)

    async def on_wal(msg: Msg) -> None:
        agent = msg.subject[wal_prefix_len:]
        headers = msg.headers or {}
        by = json.loads(msg.data).get("by", 1)
        values[agent] = values.get(agent, 0) + by
        seq = counter["seq"] = counter["seq"] + 1
        reply_to = headers.get(REPLY_HEADER)
        if reply_to:
            waiting[seq] = reply_to
        await publish(
            RAW_EVENT_PREFIX + agent,
            b'{"by":%d}' % by,
            reply=f"{ack_prefix}{seq}",
            headers={
                "ce-type": "incremented",
                "ce-sequence": str(seq),
                "ce-requestid": headers.get("ce-id", ""),
            },
        )

    await nc.subscribe(ack_prefix + "*", cb=on_ack, pending_msgs_limit=1_000_000)
    await js.subscribe(
        RAW_WAL_PREFIX + (agent or ">"),
        stream=RAW_WAL_STREAM,
        cb=on_wal,
        ordered_consumer=True,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
        pending_msgs_limit=65536,
    )


async def _serve(role: str, url: str, agent: str | None) -> int:
    async with connect(url, f"o-bus-bench-raw-{role}") as (nc, js):

        async def answer(msg: Msg) -> None:
            await msg.respond(b"ok")

        async def start() -> None:
            if role == "splitter":
                await serve_splitter(nc)
            else:
                await serve_agent(nc, js, agent)
            await nc.subscribe(status_subject(role, agent), cb=answer)

        async def stop() -> None:
            with contextlib.suppress(nats.errors.Error):
                await nc.flush(timeout=2)

        await run_until_signalled(start, stop)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m o_bus_bench.raw")
    parser.add_argument("role", choices=["splitter", "agent"])
    parser.add_argument("--nats", required=True)
    parser.add_argument("--agent", help="agent: serve only this agent's requests")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    return run(_serve(args.role, args.nats, args.agent))


if __name__ == "__main__":
    sys.exit(main())
