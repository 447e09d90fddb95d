"""A JetStream cluster of local nats-server processes (``o-bus cluster up``, and the tests).

Each node is an :class:`EmbeddedServer` on 127.0.0.1 with its own store dir
(``DATA_DIR/n1``, ...), a distinct server name (``n1``, ...) and routes to every node, rendered
by the same config generator as the deploy files. Client ports are picked by the servers;
cluster (route) ports are picked free before the start, since every node must know them.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from pathlib import Path

import nats
import nats.errors
from nats.js.errors import Error as JetStreamError

from o_bus.errors import ConfigurationError
from o_bus.server.config import ClusterConfig
from o_bus.server.embedded import EmbeddedServer

__all__ = ["LocalCluster"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class LocalCluster:
    """``nodes`` clustered nats-servers under ``data_dir``."""

    def __init__(
        self,
        data_dir: Path,
        nodes: int = 3,
        *,
        name: str = "o-bus-local",
        sync_interval: str | None = None,
        preexec_fn: Callable[[], None] | None = None,
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        if nodes < 1:
            raise ConfigurationError(f"a cluster needs at least one node, got {nodes}")
        self.data_dir = Path(data_dir)
        route_ports = [_free_port() for _ in range(nodes)]
        routes = tuple(f"nats-route://127.0.0.1:{port}" for port in route_ports)
        self.servers = [
            EmbeddedServer(
                self.data_dir / f"n{number}",
                server_name=f"n{number}",
                sync_interval=sync_interval,
                cluster=ClusterConfig(name=name, host="127.0.0.1", port=port, routes=routes),
                preexec_fn=preexec_fn,
                pass_fds=pass_fds,
            )
            for number, port in enumerate(route_ports, start=1)
        ]

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self.servers]

    @property
    def url(self) -> str:
        """All client URLs, comma-separated (what ``--nats`` takes)."""
        return ",".join(self.urls)

    def node(self, name: str) -> EmbeddedServer:
        for server in self.servers:
            if server.server_name == name:
                return server
        raise ConfigurationError(f"no node named {name!r} in this cluster")

    def start(self, timeout: float = 60.0) -> None:
        """Start every node; return once JetStream answers (a meta leader is elected)."""
        try:
            for server in self.servers:
                server.start(timeout)
            asyncio.run(self._wait_for_jetstream(timeout))
        except BaseException:
            self.stop()
            raise

    async def _wait_for_jetstream(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        nc = await nats.connect(self.urls, connect_timeout=5, max_reconnect_attempts=-1)
        try:
            js = nc.jetstream(timeout=2.0)
            while True:
                try:
                    await js.account_info()
                    return
                except (nats.errors.Error, JetStreamError) as err:
                    if time.monotonic() > deadline:
                        raise ConfigurationError(
                            f"the cluster in {self.data_dir} has no JetStream after {timeout}s: "
                            f"{err}"
                        ) from err
                    await asyncio.sleep(0.2)
        finally:
            await nc.close()

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
