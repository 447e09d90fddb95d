"""Access tokens of the web console and the metrics endpoint: one for operators (may act), one for
viewers (read only). Generated once in the data dir, readable by its owner only (0600)."""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["ROLES", "Role", "Tokens", "token_file"]

Role = Literal["operator", "viewer"]
ROLES: tuple[Role, ...] = ("operator", "viewer")


def token_file(data_dir: Path, role: Role) -> Path:
    return data_dir / f"console-{role}.token"


def _load_or_create(path: Path) -> str:
    if path.is_file():
        text = path.read_text().strip()
        if text:
            return text
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    # O_EXCL: two processes starting at once keep one token, the first one written.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    return token


@dataclass(frozen=True)
class Tokens:
    operator: str
    viewer: str

    @classmethod
    def load(cls, data_dir: Path) -> Tokens:
        """The data dir's tokens, created (mode 0600) where missing."""
        return cls(
            operator=_load_or_create(token_file(data_dir, "operator")),
            viewer=_load_or_create(token_file(data_dir, "viewer")),
        )

    def role_of(self, token: str | None) -> Role | None:
        """The role a presented token grants (compared in constant time), or None."""
        if not token:
            return None
        for role in ROLES:
            if hmac.compare_digest(token.encode(), getattr(self, role).encode()):
                return role
        return None
