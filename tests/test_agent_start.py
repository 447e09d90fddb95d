"""An agent process started while the store does not answer (a server restarting, a leader
being elected) waits for it, as long as its patience lasts: it is neither a crash nor code that
cannot be loaded, which the supervisor would leave stopped."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from support import eventually

from o_bus.agent.catalogue import Catalogue
from o_bus.cli.up import register_definitions
from o_bus.common.connect import connect
from o_bus.config import StorageConfig
from o_bus.errors import AgentNotFoundError, StorageError
from o_bus.runtime.agent_code import agent_code_when_the_store_answers
from o_bus.server.embedded import EmbeddedServer
from o_bus.store.provision import provision


async def test_an_agent_started_during_a_store_outage_loads_its_code_when_it_is_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = EmbeddedServer(tmp_path / "nats")
    server.start()
    try:
        async with connect(server.url, "agent-start", timeout=1.0) as (nc, js):
            await provision(js, StorageConfig())
            await register_definitions(js, Catalogue.discover([]))
            server.kill()
            loading = asyncio.ensure_future(
                agent_code_when_the_store_answers(nc, js, "counter", None, patience=60)
            )

            async def waiting() -> bool:
                return "the store does not answer" in caplog.text

            await eventually(waiting, what="the agent to wait for the store")
            assert not loading.done()
            await asyncio.to_thread(server.restart)
            _, definition = await asyncio.wait_for(loading, 60)
            assert definition.name == "counter"
    finally:
        server.stop()


async def test_a_store_away_longer_than_the_patience_is_a_storage_error(tmp_path: Path) -> None:
    server = EmbeddedServer(tmp_path / "nats")
    server.start()
    try:
        async with connect(server.url, "agent-start", timeout=1.0) as (nc, js):
            await provision(js, StorageConfig())
            await register_definitions(js, Catalogue.discover([]))
            with pytest.raises(AgentNotFoundError):  # a definite answer is not waited out
                await agent_code_when_the_store_answers(nc, js, "nosuch", None, patience=60)
            server.kill()
            with pytest.raises(StorageError, match=r"did not answer for 0\.5 s"):
                await agent_code_when_the_store_answers(nc, js, "counter", None, patience=0.5)
    finally:
        server.stop()
