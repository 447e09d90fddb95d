"""The server's user list: every identity in the credentials dir with its permissions."""

from __future__ import annotations

from o_bus.security.identities import IdentityStore
from o_bus.security.permissions import permissions_for
from o_bus.server.config import User

__all__ = ["server_users"]


def server_users(store: IdentityStore) -> tuple[User, ...]:
    """One nkey user per identity that has a seed (generate them first: ``ensure_*``)."""
    return tuple(
        User(identity.public_key, permissions_for(identity), identity.label)
        for identity in store.all()
    )
