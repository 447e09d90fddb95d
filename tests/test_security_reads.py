"""Reading and answering as someone else, each tried as the wrong identity (refused) and as
the right one (accepted): forged replies, another client's replies, another agent's KV keys,
what clients and candidates may publish. One secured server, with TLS, for the module."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from nats.aio.msg import Msg
from security_support import SecuredBus, refused, secured_bus

from o_bus.common.connect import (
    SEED_ENV,
    TLS_CA_ENV,
    TLS_CA_PEM_ENV,
    ConnectOptions,
    connect,
)
from o_bus.security.identities import CANDIDATE
from o_bus.security.issuing import CREDS_DIR_ENV, identity_env
from o_bus.store import layout

TOOL_KV = f"KV_{layout.TOOL_KV_BUCKET}"


@pytest.fixture(scope="module")
def bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredBus]:
    with secured_bus(Path(tmp_path_factory.mktemp("secured-tls")), tls=True) as running:
        yield running


def _handshake(url: str, context: ssl.SSLContext) -> bytes:
    """The server's INFO line, then a TLS handshake with ``context`` (raises if refused)."""
    host, port = urlsplit(url).hostname or "", urlsplit(url).port or 0
    with socket.create_connection((host, port), timeout=5) as raw:
        info = raw.recv(4096)
        with context.wrap_socket(raw, server_hostname=host) as tls:
            tls.do_handshake()
    return info


def test_the_server_requires_tls_and_clients_verify_it(bus: SecuredBus) -> None:
    trusting = ssl.create_default_context()  # the system's CAs, not the bus's
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(bus.url, trusting)
    info = _handshake(bus.url, bus.security.tls.client_options().nats_kwargs()["tls"])  # type: ignore[union-attr]
    assert b'"tls_required":true' in info


async def test_a_client_cannot_read_another_clients_replies(bus: SecuredBus) -> None:
    async with bus.connect("client") as alice, bus.connect("operator") as other:
        # The operator stands in for a second client identity: its inbox prefix differs.
        theirs = other.nc.new_inbox()
        await refused(alice, alice.nc.subscribe(theirs + ".>"))
        await refused(alice, alice.nc.subscribe("_INBOX.>"))
        mine = await alice.nc.subscribe(alice.nc.new_inbox())
        await mine.unsubscribe()


async def test_a_client_cannot_forge_a_reply(bus: SecuredBus) -> None:
    async with bus.connect("client") as forger, bus.connect("operator") as victim:
        received: list[Msg] = []

        async def on_reply(msg: Msg) -> None:
            received.append(msg)

        inbox = victim.nc.new_inbox()
        await victim.nc.subscribe(inbox, cb=on_reply)
        await victim.nc.flush()
        await refused(forger, forger.nc.publish(inbox, b'{"ok": true, "forged": true}'))
        await victim.nc.flush()
        assert received == []


async def test_an_agent_answers_a_client_on_its_inbox(bus: SecuredBus) -> None:
    async with bus.connect("client") as client, bus.connect("agent", "counter") as agent:
        got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def on_reply(msg: Msg) -> None:
            got.set_result(msg.data)

        inbox = client.nc.new_inbox()
        await client.nc.subscribe(inbox, cb=on_reply)
        await client.nc.flush()
        await agent.nc.publish(inbox, b'{"ok": true}')
        assert await asyncio.wait_for(got, 5.0) == b'{"ok": true}'


@pytest.mark.parametrize(
    "subject",
    [
        layout.event_subject("counter"),
        layout.diff_subject("counter"),
        layout.control_subject("counter", "dup"),
        layout.heartbeat_subject("counter"),
        f"$KV.{layout.TOOL_KV_BUCKET}.counter.x",
    ],
)
async def test_a_client_only_sends_requests_queries_and_feedback(
    bus: SecuredBus, subject: str
) -> None:
    async with bus.connect("client") as client:
        await refused(client, client.nc.publish(subject, b"{}"))
        for allowed in (
            layout.request_subject("counter"),
            layout.query_subject("counter"),
            layout.feedback_subject("counter"),
        ):
            await client.nc.publish(allowed, b"{}")
        await client.nc.flush()
        assert client.violations.empty()


async def test_an_agent_reads_and_writes_only_its_own_kv_keys(bus: SecuredBus) -> None:
    async with bus.connect("agent", "counter") as counter:
        kv = await counter.js.key_value(layout.TOOL_KV_BUCKET)
        await kv.put("counter.secret", b"42")
        assert (await kv.get("counter.secret")).value == b"42"
        await kv.put("_shared.notice", b"hi")
    async with bus.connect("agent", "echo") as echo:
        kv = await echo.js.key_value(layout.TOOL_KV_BUCKET)
        await refused(echo, kv.get("counter.secret"))
        await refused(echo, kv.put("counter.secret", b"0"))
        await refused(echo, echo.js.get_msg(TOOL_KV, 1))
        await refused(echo, echo.js.get_msg(TOOL_KV, 1, direct=True))
        await refused(echo, kv.watchall())
        assert (await kv.get("_shared.notice")).value == b"hi"


async def test_an_agent_reads_only_its_own_event_stream(bus: SecuredBus) -> None:
    async with bus.connect("agent", "counter") as counter:
        await counter.js.publish(layout.event_subject("counter"), b"{}")
    async with bus.connect("agent", "echo") as echo:
        await refused(echo, echo.js.get_msg(layout.events_stream("counter"), 1, direct=True))
        await refused(
            echo, echo.js.subscribe(layout.event_subject("counter"), ordered_consumer=True)
        )


async def test_an_agent_sends_requests_to_itself_only(bus: SecuredBus) -> None:
    """Its tools' results come back in as its own requests; another agent's are not its to send."""
    async with bus.connect("agent", "echo") as echo:
        await refused(echo, echo.nc.publish(layout.request_subject("counter"), b"{}"))
        await echo.nc.publish(layout.request_subject("echo"), b"{}")
        await echo.nc.flush()
        assert echo.violations.empty()


async def test_a_candidate_writes_only_its_figures_and_diffs(bus: SecuredBus) -> None:
    async with bus.connect("candidate", "counter") as candidate:
        for subject in (
            layout.event_subject("counter"),
            layout.outcome_subject("counter"),
            layout.wal_subject("counter"),
            layout.diff_subject("echo"),
            f"$KV.{layout.ROUTES_BUCKET}.counter",
            f"$KV.{layout.SNAPSHOTS_BUCKET}.counter",
        ):
            await refused(candidate, candidate.js.publish(subject, b"{}"))
        ack = await candidate.js.publish(layout.diff_subject("counter"), b"{}")
        assert ack.stream == layout.DIFF_STREAM
        await candidate.nc.publish(
            layout.candidate_subject("counter", "sha256:" + "a" * 64, "stats"), b"{}"
        )
        await candidate.nc.flush()
        assert candidate.violations.empty()


async def test_a_candidate_connects_with_its_identity_from_the_environment_alone(
    bus: SecuredBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the arbiter hands a sandboxed candidate, which may not read the data dir.
    monkeypatch.setenv(CREDS_DIR_ENV, str(bus.security.identities.root))
    monkeypatch.setenv(TLS_CA_ENV, str(bus.security.tls.ca))  # type: ignore[union-attr]
    env = identity_env(CANDIDATE, "counter", inline=True)
    assert set(env) == {SEED_ENV, TLS_CA_PEM_ENV}
    options = ConnectOptions.from_env(env)
    async with connect(bus.url, "candidate", options=options) as (nc, js):
        ack = await js.publish(layout.diff_subject("counter"), b"{}")
        assert ack.stream == layout.DIFF_STREAM
        assert nc.new_inbox().startswith(
            bus.security.identities.ensure(CANDIDATE, "counter").inbox_prefix
        )
