"""The one generator of nats-server config files.

Everything that runs a nats-server renders its config here: the embedded server of `o-bus up`
and of the tests, the local cluster of `o-bus cluster up`, and the files under ``deploy/``
(see :mod:`o_bus.server.deploy_files`), so that what is deployed cannot drift from what runs
and is tested here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

__all__ = [
    "ClusterConfig",
    "EncryptionConfig",
    "Permissions",
    "ServerConfig",
    "TlsConfig",
    "User",
    "render",
]


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """Certificate, key and the CA that verifies peers; ``verify`` asks clients (or route
    peers) for a certificate signed by that CA. Paths may be ``$VAR``."""

    cert_file: str
    key_file: str
    ca_file: str
    verify: bool = False


@dataclass(frozen=True, slots=True)
class Permissions:
    """What one user may publish and subscribe to (nats-server subject permissions)."""

    publish_allow: tuple[str, ...] = ()
    publish_deny: tuple[str, ...] = ()
    subscribe_allow: tuple[str, ...] = ()
    subscribe_deny: tuple[str, ...] = ()
    allow_responses: bool = False


@dataclass(frozen=True, slots=True)
class User:
    """One nkey user (``nkey`` is its public key, ``U...``); ``role`` becomes a comment."""

    nkey: str
    permissions: Permissions
    role: str = ""


@dataclass(frozen=True, slots=True)
class EncryptionConfig:
    """JetStream encryption at rest: ``cipher`` (chacha or aes) and the key, usually ``$VAR``
    so that it is read from the server's environment and never written to the file."""

    key: str
    cipher: str = "chacha"


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """JetStream clustering: a cluster name, the route port, and the routes to every node
    (a node's route to itself is detected and ignored, so every node may list all)."""

    name: str
    port: int
    routes: tuple[str, ...]
    host: str | None = None
    tls: TlsConfig | None = None  # TLS on the routes between nodes


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """One nats-server. ``server_name`` may be ``$VAR`` (read from the environment).

    ``notes`` are comments written before a setting (keys: ``server_name``, ``host``,
    ``port``, ``http``, ``max_payload``, ``jetstream``, ``store_dir``, ``sync_interval``,
    ``max_file_store``, ``cluster``, ``lame_duck``, ``tls``, ``authorization``,
    ``encryption``), ``header`` at the top of the file."""

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
    tls: TlsConfig | None = None  # TLS for clients
    users: tuple[User, ...] | None = None  # None: anyone may connect; else these nkey users
    encryption: EncryptionConfig | None = None
    header: str = ""
    notes: dict[str, str] = field(default_factory=dict)


def _quoted(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _name(value: str) -> str:
    return value if value.startswith("$") else _quoted(value)


def _list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(_quoted(value) for value in values) + "]"


def _tls_lines(tls: TlsConfig, indent: str) -> list[str]:
    lines = [
        f"{indent}tls {{",
        f"{indent}  cert_file: {_name(tls.cert_file)}",
        f"{indent}  key_file: {_name(tls.key_file)}",
        f"{indent}  ca_file: {_name(tls.ca_file)}",
    ]
    if tls.verify:
        lines.append(f"{indent}  verify: true")
    return [*lines, f"{indent}}}"]


def _user_lines(user: User) -> list[str]:
    perms = user.permissions
    lines = [f"    # {user.role}"] if user.role else []
    lines += ["    {", f"      nkey: {user.nkey}", "      permissions: {"]
    for direction, allow, deny in (
        ("publish", perms.publish_allow, perms.publish_deny),
        ("subscribe", perms.subscribe_allow, perms.subscribe_deny),
    ):
        lines.append(f"        {direction}: {{")
        if allow:
            lines.append(f"          allow: {_list(allow)}")
        if deny:
            lines.append(f"          deny: {_list(deny)}")
        lines.append("        }")
    if perms.allow_responses:
        lines.append("        allow_responses: true")
    return [*lines, "      }", "    }"]


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
    if config.encryption is not None:
        out.add("encryption", f"cipher: {config.encryption.cipher}", "  ")
        out.lines.append(f"  key: {_name(config.encryption.key)}")
    out.lines.append("}")
    if config.tls is not None:
        out.blank()
        first, *rest = _tls_lines(config.tls, "")
        out.add("tls", first)
        out.lines += rest
    if config.users is not None:
        out.blank()
        out.add("authorization", "authorization {")
        out.lines.append("  users: [")
        for user in config.users:
            out.lines += _user_lines(user)
        out.lines += ["  ]", "}"]
    if config.cluster is not None:
        cluster = config.cluster
        out.blank()
        out.add("cluster", "cluster {")
        out.lines.append(f"  name: {_quoted(cluster.name)}")
        if cluster.host is not None:
            out.lines.append(f"  host: {_quoted(cluster.host)}")
        out.lines.append(f"  port: {cluster.port}")
        if cluster.tls is not None:
            out.lines += _tls_lines(cluster.tls, "  ")
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
