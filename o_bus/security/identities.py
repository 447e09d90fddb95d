"""Identities: one nkey per role, generated once into the credentials dir (files 0600).

``creds/<role>.nk`` for the fixed roles (the platform's services, the operator, the default
client), ``creds/agents/<agent>.nk`` for each agent (its standby uses the same identity) and
``creds/candidates/<agent>.nk`` for the candidates of each agent. A seed file is the standard
nkey seed text (``SU...``): any NATS client library reads it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
from pathlib import Path
from typing import Final

import nkeys

from o_bus.common.connect import inbox_prefix_for
from o_bus.errors import ConfigurationError
from o_bus.store.layout import validate_agent_name

__all__ = [
    "AGENT",
    "CANDIDATE",
    "CLIENT",
    "CREDS_DIR",
    "OPERATOR",
    "SERVICE_ROLES",
    "Identity",
    "IdentityStore",
]

CREDS_DIR: Final = "creds"
OPERATOR: Final = "operator"
CLIENT: Final = "client"
AGENT: Final = "agent"
CANDIDATE: Final = "candidate"
SERVICE_ROLES: Final = ("splitter", "supervisor", "arbiter", "health", "feedback", "triggers")
FIXED_ROLES: Final = (OPERATOR, CLIENT, *SERVICE_ROLES)
_PER_AGENT: Final = {AGENT: "agents", CANDIDATE: "candidates"}
_SUFFIX: Final = ".nk"


@dataclasses.dataclass(frozen=True, slots=True)
class Identity:
    """One NATS user: its role (``agent`` and ``candidate`` name an agent too) and seed."""

    role: str
    seed_file: Path
    public_key: str
    agent: str | None = None

    @property
    def label(self) -> str:
        return f"{self.role} {self.agent}" if self.agent else self.role

    @property
    def inbox_prefix(self) -> str:
        return inbox_prefix_for(self.public_key)


def _public_key(seed_file: Path) -> str:
    try:
        seed = bytearray(seed_file.read_bytes().strip())
        public: bytes = nkeys.from_seed(seed).public_key
    except (OSError, nkeys.NkeysError) as err:
        raise ConfigurationError(f"cannot read the nkey seed {seed_file}: {err}") from err
    return public.decode()


def _write_private(path: Path, data: bytes) -> None:
    """Create ``path`` readable by its owner only, atomically (never a half-written seed)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)


class IdentityStore:
    """The credentials dir: seeds are created on first use and kept (see docs/security.md
    for rotation: delete a seed file and restart)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @classmethod
    def of_data_dir(cls, data_dir: Path) -> IdentityStore:
        return cls(Path(data_dir).absolute() / CREDS_DIR)

    def path(self, role: str, agent: str | None = None) -> Path:
        if role in _PER_AGENT:
            if agent is None:
                raise ConfigurationError(f"the {role} identity belongs to an agent: name it")
            return self.root / _PER_AGENT[role] / (validate_agent_name(agent) + _SUFFIX)
        if role not in FIXED_ROLES:
            raise ConfigurationError(f"no role {role!r}; roles: {', '.join(FIXED_ROLES)}")
        return self.root / (role + _SUFFIX)

    def ensure(self, role: str, agent: str | None = None) -> Identity:
        """The identity, generated now if it has no seed yet."""
        path = self.path(role, agent)
        if not path.exists():
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            seed: bytes = nkeys.encode_seed(secrets.token_bytes(32), nkeys.PREFIX_BYTE_USER)
            _write_private(path, seed + b"\n")
        return Identity(role, path, _public_key(path), agent)

    def ensure_fixed(self) -> list[Identity]:
        """Every fixed role's identity (operator, client, the services)."""
        return [self.ensure(role) for role in FIXED_ROLES]

    def all(self) -> list[Identity]:
        """Every identity that has a seed: the fixed roles, then agents and candidates."""
        found = [self.ensure(role) for role in FIXED_ROLES if self.path(role).exists()]
        for role, folder in _PER_AGENT.items():
            directory = self.root / folder
            if directory.is_dir():
                for seed in sorted(directory.glob("*" + _SUFFIX)):
                    agent = seed.name.removesuffix(_SUFFIX)
                    found.append(Identity(role, seed, _public_key(seed), agent))
        return found

    def fingerprint(self) -> tuple[tuple[str, float], ...]:
        """Cheap to compute: changes when a seed is added, removed or replaced."""
        seeds = [*self.root.glob("*" + _SUFFIX)]
        for folder in _PER_AGENT.values():
            seeds += self.root.glob(f"{folder}/*{_SUFFIX}")
        stamps = []
        for seed in seeds:
            with contextlib.suppress(FileNotFoundError):  # replaced meanwhile
                stamps.append((str(seed), seed.stat().st_mtime))
        return tuple(sorted(stamps))
