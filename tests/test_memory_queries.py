"""The query path on its own, on a real nats-server: handlers sync and async, a handler that
fails or returns something that is not JSON, waiting for min_seq, the queue group."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from nats.aio.client import Client
from support import eventually

from o_bus.agent.definition import AgentDefinition
from o_bus.agent.queries import Query, QueryContext
from o_bus.client import query
from o_bus.errors import ConfigurationError
from o_bus.events.model import State
from o_bus.runtime.queries import QueryServer


class Tally(State):
    total: int = 0


class Total(Query):
    pass


class Slow(Query):
    seconds: float = 0.05


class Broken(Query):
    pass


class Opaque(Query):
    pass


tally: AgentDefinition[Tally] = AgentDefinition("tally", state=Tally, version="1.0.0")


@tally.query
def total(ctx: QueryContext[Tally], q: Total) -> dict[str, int]:
    return {"total": ctx.state.total, "seq": ctx.seq}


@tally.query
async def slow(ctx: QueryContext[Tally], q: Slow) -> float:
    await asyncio.sleep(q.seconds)
    return q.seconds


@tally.query
def broken(ctx: QueryContext[Tally], q: Broken) -> None:
    raise ZeroDivisionError("a bug in the handler")


@tally.query
def opaque(ctx: QueryContext[Tally], q: Opaque) -> Any:
    return object()


def test_a_query_needs_a_query_model() -> None:
    def bad(ctx: QueryContext[Tally], q: int) -> None: ...

    with pytest.raises(ConfigurationError, match="Query subclass"):
        tally.query(bad)
    with pytest.raises(ConfigurationError, match="registered twice"):
        tally.query(total)


async def test_queries_answer_fail_cleanly_and_wait_for_min_seq(nc: Client) -> None:
    view: dict[str, Any] = {"state": Tally(total=5), "seq": 3}
    server = QueryServer(nc, nc.jetstream(), "tally", tally, lambda: (view["state"], view["seq"]))
    await server.start()
    try:
        ok = await query(nc, "tally", "total")
        assert ok == {
            "ok": True,
            "agent": "tally",
            "query": "total",
            "seq": 3,
            "result": {"total": 5, "seq": 3},
        }
        # Queries run concurrently: a slow one does not hold up the next.
        slow_reply, fast = await asyncio.gather(
            query(nc, "tally", "slow", {"seconds": 0.5}), query(nc, "tally", "total")
        )
        assert slow_reply["result"] == 0.5
        assert fast["ok"]
        failed = await query(nc, "tally", "broken")
        assert failed["error"]["code"] == "internal_error"
        assert "ZeroDivisionError" in failed["error"]["message"]
        not_json = await query(nc, "tally", "opaque")
        assert failed["query"] == "broken"
        assert not_json["error"]["code"] == "internal_error"
        assert "not JSON" in not_json["error"]["message"]

        waiting = asyncio.create_task(query(nc, "tally", "total", min_seq=4, timeout=10))
        # A query sent after it is answered, so the server has it, and it still waits.
        assert (await query(nc, "tally", "total"))["seq"] == 3
        assert not waiting.done()
        view["state"], view["seq"] = Tally(total=7), 4
        assert (await waiting)["result"] == {"total": 7, "seq": 4}
        assert (await query(nc, "tally", "total"))["ok"]  # the server still answers
    finally:
        await server.stop()


async def test_two_serving_processes_never_both_answer(nc: Client, nats_url: str) -> None:
    other = Client()
    await other.connect(nats_url)
    servers = [
        QueryServer(conn, conn.jetstream(), "tally", tally, lambda: (Tally(), 0))
        for conn in (nc, other)
    ]
    for server in servers:
        await server.start()
    replies: list[bytes] = []
    inbox = nc.new_inbox()

    async def collect(msg: Any) -> None:
        replies.append(msg.data)

    sub = await nc.subscribe(inbox, cb=collect)
    try:
        for _ in range(20):
            await nc.publish("o.qry.tally", b'{"query": "total"}', reply=inbox)
        await nc.flush()

        async def all_answered() -> bool:
            return len(replies) >= 20

        await eventually(all_answered, what="an answer to each of the 20 queries")
        await asyncio.sleep(0.2)  # a second answer to any of them would arrive by now
        assert len(replies) == 20
    finally:
        await sub.unsubscribe()
        for server in servers:
            await server.stop()
        await other.close()
