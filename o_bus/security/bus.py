"""What `o-bus up` needs to run a secured bus: the server's users, TLS and store encryption,
and each process's connect options and environment."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from o_bus.common.connect import ConnectOptions
from o_bus.security.at_rest import store_encryption
from o_bus.security.identities import OPERATOR, IdentityStore
from o_bus.security.issuing import CREDS_DIR_ENV
from o_bus.security.tls import TLS_DIR, TlsFiles, ensure_tls
from o_bus.security.users import server_users
from o_bus.server.config import EncryptionConfig

__all__ = ["BusSecurity"]


@dataclasses.dataclass(frozen=True, slots=True)
class BusSecurity:
    """Credentials (always), TLS and encryption at rest (when asked for) of one data dir."""

    identities: IdentityStore
    tls: TlsFiles | None = None
    encryption: EncryptionConfig | None = None
    server_env: dict[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def prepare(
        cls,
        data_dir: Path,
        *,
        tls: bool = False,
        tls_dir: Path | None = None,
        store_key_file: Path | None = None,
        cipher: str = "chacha",
    ) -> BusSecurity:
        """Generate what is missing: every fixed identity; with ``tls``, a CA and certificates
        in ``<data_dir>/tls`` (``tls_dir``: supplied files, used as they are)."""
        identities = IdentityStore.of_data_dir(data_dir)
        identities.ensure_fixed()
        files: TlsFiles | None = None
        if tls_dir is not None:
            files = TlsFiles.in_dir(tls_dir.absolute()).check()
        elif tls:
            files = ensure_tls(Path(data_dir).absolute() / TLS_DIR)
        at_rest = store_encryption(store_key_file, cipher)
        encryption, env = at_rest if at_rest is not None else (None, {})
        return cls(identities, files, encryption, env)

    def server_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :class:`~o_bus.server.embedded.EmbeddedServer`."""
        return {
            "users": server_users(self.identities),
            "tls": self.tls.server() if self.tls is not None else None,
            "encryption": self.encryption,
            "env": self.server_env,
        }

    def options(self, role: str = OPERATOR, agent: str | None = None) -> ConnectOptions:
        """How a process of ``role`` connects."""
        seed = self.identities.ensure(role, agent).seed_file
        if self.tls is None:
            return ConnectOptions(nkey_seed_file=seed)
        return dataclasses.replace(self.tls.client_options(), nkey_seed_file=seed)

    def env(self, role: str, *, issues_identities: bool = False) -> dict[str, str]:
        """The environment of a child process of ``role``; ``issues_identities`` for the
        services that start agents and candidates under their own identities."""
        env = self.options(role).env()
        if issues_identities:
            env[CREDS_DIR_ENV] = str(self.identities.root.absolute())
        return env
