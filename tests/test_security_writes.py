"""Writes that change what agents do, each tried as the wrong identity (refused by the server)
and as the right one (accepted): forged events, WAL appends, code, code versions, routes, and
the purge or delete of streams. One secured server (as `o-bus up` runs it) for the module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import nats.errors
import pytest
from nats.aio.client import Client
from nats.js.api import StreamConfig
from security_support import SecuredBus, refused, secured_bus

from o_bus.store import layout

ROUTE_KEY = f"$KV.{layout.ROUTES_BUCKET}.counter"
VERSION_KEY = f"$KV.{layout.CODE_VERSIONS_BUCKET}.counter.{'0' * 64}"
CODE_CHUNK = f"$O.{layout.CODE_BUCKET}.C.forged"


@pytest.fixture(scope="module")
def bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredBus]:
    with secured_bus(Path(tmp_path_factory.mktemp("secured"))) as running:
        yield running


async def test_an_anonymous_connection_is_refused(bus: SecuredBus) -> None:
    anonymous = Client()
    try:
        with pytest.raises(nats.errors.Error, match="Authorization"):
            await anonymous.connect(bus.url, connect_timeout=2, allow_reconnect=False)
    finally:
        await anonymous.close()


@pytest.mark.parametrize(
    ("role", "agent"),
    [
        ("client", None),
        ("splitter", None),
        ("supervisor", None),
        ("arbiter", None),
        ("agent", "echo"),
        ("candidate", "counter"),
    ],
)
async def test_only_the_agent_appends_to_its_event_stream(
    bus: SecuredBus, role: str, agent: str | None
) -> None:
    async with bus.connect(role, agent) as conn:
        error = await refused(conn, conn.js.publish(layout.event_subject("counter"), b"{}"))
    assert layout.event_subject("counter") in error


async def test_the_agent_itself_appends_to_its_event_stream(bus: SecuredBus) -> None:
    async with bus.connect("agent", "counter") as conn:
        ack = await conn.js.publish(layout.outcome_subject("counter"), b"{}")
    assert ack.stream == layout.events_stream("counter")


@pytest.mark.parametrize(
    ("role", "agent"), [("client", None), ("agent", "counter"), ("arbiter", None)]
)
async def test_only_the_splitter_appends_to_the_wal(
    bus: SecuredBus, role: str, agent: str | None
) -> None:
    async with bus.connect(role, agent) as conn:
        await refused(conn, conn.js.publish(layout.wal_subject("counter"), b"{}"))
    async with bus.connect("splitter") as conn:
        ack = await conn.js.publish(layout.wal_subject("nobody"), b"{}")
    assert ack.stream == layout.WAL_STREAM


@pytest.mark.parametrize(
    ("role", "agent"),
    [
        ("client", None),
        ("agent", "counter"),
        ("candidate", "counter"),
        ("supervisor", None),
        ("splitter", None),
        ("health", None),
    ],
)
async def test_only_the_arbiter_and_operators_change_routes(
    bus: SecuredBus, role: str, agent: str | None
) -> None:
    async with bus.connect(role, agent) as conn:
        await refused(conn, conn.js.publish(ROUTE_KEY, b"{}"))
    for allowed in ("arbiter", "operator"):
        async with bus.connect(allowed) as conn:
            assert (await conn.js.publish(ROUTE_KEY, b"{}")).seq > 0


@pytest.mark.parametrize(
    ("role", "agent"),
    [
        ("client", None),
        ("agent", "counter"),
        ("candidate", "counter"),
        ("arbiter", None),
        ("supervisor", None),
        ("splitter", None),
    ],
)
async def test_only_operators_deploy_code(bus: SecuredBus, role: str, agent: str | None) -> None:
    async with bus.connect(role, agent) as conn:
        await refused(conn, conn.js.publish(CODE_CHUNK, b"import os"))
        await refused(conn, conn.js.publish(VERSION_KEY, b"{}"))
    async with bus.connect("operator") as conn:
        store = await conn.js.object_store(layout.CODE_BUCKET)
        info = await store.put("operator-deployed", b"x = 1")
        assert info.size == len(b"x = 1")
        assert (await conn.js.publish(VERSION_KEY, b"{}")).seq > 0


@pytest.mark.parametrize(
    "stream",
    [layout.WAL_STREAM, layout.events_stream("counter"), f"KV_{layout.ROUTES_BUCKET}"],
)
@pytest.mark.parametrize(
    ("role", "agent"),
    [("client", None), ("agent", "counter"), ("arbiter", None), ("supervisor", None)],
)
async def test_nobody_but_an_operator_purges_or_deletes_a_stream(
    bus: SecuredBus, stream: str, role: str, agent: str | None
) -> None:
    async with bus.connect(role, agent) as conn:
        await refused(conn, conn.js.purge_stream(stream))
        await refused(conn, conn.js.delete_stream(stream))
        await refused(conn, conn.js.delete_msg(stream, 1))


async def test_an_operator_purges_and_deletes_streams(bus: SecuredBus) -> None:
    async with bus.connect("operator") as conn:
        await conn.js.add_stream(StreamConfig(name="SCRATCH", subjects=["scratch.>"]))
        await conn.js.publish("scratch.one", b"1")
        assert await conn.js.purge_stream("SCRATCH")
        assert await conn.js.delete_stream("SCRATCH")


@pytest.mark.parametrize(("role", "agent"), [("client", None), ("agent", "echo")])
async def test_only_the_agent_says_how_far_it_has_processed(
    bus: SecuredBus, role: str, agent: str | None
) -> None:
    """Forged progress would make the splitter count an agent's waiting requests as done."""
    async with bus.connect(role, agent) as conn:
        error = await refused(conn, conn.nc.publish(layout.progress_subject("counter"), b"9"))
    assert layout.progress_subject("counter") in error


async def test_the_agent_says_how_far_it_has_processed(bus: SecuredBus) -> None:
    async with bus.connect("operator") as watcher, bus.connect("agent", "counter") as conn:
        heard = await watcher.nc.subscribe(layout.progress_subject("counter"))
        await watcher.nc.flush()
        await conn.nc.publish(layout.progress_subject("counter"), b"9")
        await conn.nc.flush()
        assert (await heard.next_msg(timeout=5)).data == b"9"
        assert conn.violations.empty()
