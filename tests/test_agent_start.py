"""An agent process started while the store does not answer (a server restarting, a leader
being elected) waits for it, as long as its patience lasts: it is neither a crash nor code that
cannot be loaded, which the supervisor would leave stopped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from support import eventually

from o_bus.agent.catalogue import Catalogue
from o_bus.cli.up import register_definitions
from o_bus.common.connect import connect
from o_bus.config import StorageConfig
from o_bus.errors import AgentNotFoundError, StorageError
from o_bus.runtime.agent_code import agent_code_when_the_store_answers
from o_bus.server.embedded import EmbeddedServer
from o_bus.store.provision import provision


@dataclass
class Store:
    """A provisioned server with the installed agents registered, and a connection to it."""

    server: EmbeddedServer
    nc: Client
    js: JetStreamContext


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    server = EmbeddedServer(tmp_path / "nats")
    server.start()
    try:
        async with connect(server.url, "agent-start", timeout=1.0) as (nc, js):
            await provision(js, StorageConfig())
            await register_definitions(js, Catalogue.discover([]))
            yield Store(server, nc, js)
    finally:
        server.stop()


async def test_an_agent_started_during_a_store_outage_loads_its_code_when_it_is_back(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    store.server.kill()
    loading = asyncio.ensure_future(
        agent_code_when_the_store_answers(store.nc, store.js, "counter", None, patience=60)
    )

    async def waiting() -> bool:
        return "the store does not answer" in caplog.text

    await eventually(waiting, what="the agent to wait for the store")
    assert not loading.done()
    await asyncio.to_thread(store.server.restart)
    _, definition = await asyncio.wait_for(loading, 60)
    assert definition.name == "counter"


async def test_a_store_away_longer_than_the_patience_is_a_storage_error(store: Store) -> None:
    with pytest.raises(AgentNotFoundError):  # a definite answer is not waited out
        await agent_code_when_the_store_answers(store.nc, store.js, "nosuch", None, patience=60)
    store.server.kill()
    with pytest.raises(StorageError, match=r"did not answer for 0\.5 s"):
        await agent_code_when_the_store_answers(store.nc, store.js, "counter", None, patience=0.5)
