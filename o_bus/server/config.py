"""The one generator of nats-server config files.

Everything that runs a nats-server renders its config here: the embedded server of `o-bus up`
and of the tests, the local cluster of `o-bus cluster up`, and the files under ``deploy/``
(see :mod:`o_bus.server.deploy_files`), so that what is deployed cannot drift from what runs
and is tested here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

__all__ = ["ClusterConfig", "ServerConfig", "render"]


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """JetStream clustering: a cluster name, the route port, and the routes to every node
    (a node's route to itself is detected and ignored, so every node may list all)."""

    name: str
    port: int
    routes: tuple[str, ...]
    host: str | None = None


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """One nats-server. ``server_name`` may be ``$VAR`` (read from the environment).

    ``notes`` are comments written before a setting (keys: ``server_name``, ``host``,
    ``port``, ``http``, ``max_payload``, ``jetstream``, ``store_dir``, ``sync_interval``,
    ``max_file_store``, ``cluster``, ``lame_duck``), ``header`` at the top of the file."""

    store_dir: str
    port: int = 4222
    server_name: str | None = None
    host: str | None = None
    http: int | str | None = None  # a port, or "host:port"
    max_payload: int | None = None
    sync_interval: str | None = None
    max_file_store: str | None = None
    max_memory_store: str | None = None
    cluster: ClusterConfig | None = None
    lame_duck: tuple[str, str] | None = None  # (grace period, duration)
    pid_file: str | None = None
    header: str = ""
    notes: dict[str, str] = field(default_factory=dict)


def _quoted(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _name(value: str) -> str:
    return value if value.startswith("$") else _quoted(value)


class _Lines:
    def __init__(self, notes: dict[str, str]) -> None:
        self.notes = notes
        self.lines: list[str] = []

    def blank(self) -> None:
        if self.lines and self.lines[-1]:
            self.lines.append("")

    def add(self, key: str, text: str, indent: str = "") -> None:
        note = self.notes.get(key)
        if note:
            if not indent:
                self.blank()
            self.lines += [f"{indent}# {line}".rstrip() for line in note.splitlines()]
        self.lines.append(f"{indent}{text}")


def render(config: ServerConfig) -> str:
    """The config file text of ``config``."""
    out = _Lines(config.notes)
    if config.header:
        out.lines += [f"# {line}".rstrip() for line in config.header.splitlines()] + [""]
    if config.server_name is not None:
        out.add("server_name", f"server_name: {_name(config.server_name)}")
    if config.host is not None:
        out.add("host", f"host: {_quoted(config.host)}")
    out.add("port", f"port: {config.port}")
    if config.http is not None:
        http = config.http if isinstance(config.http, int) else _quoted(config.http)
        out.add("http", f"http: {http}")
    if config.max_payload is not None:
        out.add("max_payload", f"max_payload: {config.max_payload}")
    out.blank()
    out.add("jetstream", "jetstream {")
    out.add("store_dir", f"store_dir: {_quoted(config.store_dir)}", "  ")
    if config.sync_interval is not None:
        out.add("sync_interval", f"sync_interval: {_quoted(config.sync_interval)}", "  ")
    if config.max_file_store is not None:
        out.add("max_file_store", f"max_file_store: {config.max_file_store}", "  ")
    if config.max_memory_store is not None:
        out.add("max_memory_store", f"max_memory_store: {config.max_memory_store}", "  ")
    out.lines.append("}")
    if config.cluster is not None:
        cluster = config.cluster
        out.blank()
        out.add("cluster", "cluster {")
        out.lines.append(f"  name: {_quoted(cluster.name)}")
        if cluster.host is not None:
            out.lines.append(f"  host: {_quoted(cluster.host)}")
        out.lines.append(f"  port: {cluster.port}")
        out.lines.append("  routes: [")
        out.lines += [f"    {route}" for route in cluster.routes]
        out.lines += ["  ]", "}"]
    if config.lame_duck is not None:
        grace, duration = config.lame_duck
        out.add("lame_duck", f"lame_duck_grace_period: {_quoted(grace)}")
        out.lines.append(f"lame_duck_duration: {_quoted(duration)}")
    if config.pid_file is not None:
        out.lines.append(f"pid_file: {_quoted(config.pid_file)}")
    return "\n".join(out.lines) + "\n"
