"""Leases in a JetStream KV bucket: who may act for a key (an agent, the supervisor).

Acquire is a create (fails while someone holds the key); renew is a compare-and-set on the
revision we hold; an unrenewed lease disappears when the bucket's TTL runs out. A lease says
who *should* act; the fence on the event log is what stops a holder that lost it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import (
    KeyNotFoundError,
    KeyWrongLastSequenceError,
)
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict, ValidationError

from o_bus.errors import StorageError
from o_bus.store import layout
from o_bus.store.provision import ensure_bucket

__all__ = ["Lease", "LeaseHolder", "LeaseStore"]

log = logging.getLogger(__name__)


class LeaseHolder(BaseModel):
    model_config = ConfigDict(frozen=True)
    holder: str
    pid: int
    role: str = "active"
    acquired_at: str


@dataclass(slots=True)
class Lease:
    key: str
    holder: LeaseHolder
    revision: int


class LeaseStore:
    """Acquire, renew, release and revoke leases in the ``o_leases`` bucket."""

    def __init__(self, js: JetStreamContext) -> None:
        self.js = js
        self._kv: KeyValue | None = None

    async def kv(self) -> KeyValue:
        if self._kv is None:
            self._kv = await ensure_bucket(self.js, layout.LEASES_BUCKET)
        return self._kv

    async def current(self, key: str) -> Lease | None:
        kv = await self.kv()
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            return None
        except nats.errors.Error as err:
            raise StorageError(f"cannot read lease {key!r}") from err
        if not entry.value:
            return None
        try:
            holder = LeaseHolder.model_validate_json(entry.value)
        except ValidationError:
            return None
        return Lease(key, holder, entry.revision or 0)

    async def acquire(self, key: str, holder: LeaseHolder) -> Lease | None:
        """Take the lease if nobody holds it; ``None`` if someone does."""
        kv = await self.kv()
        try:
            revision = await kv.create(key, holder.model_dump_json().encode())
        except KeyWrongLastSequenceError:
            return None
        except nats.errors.Error as err:
            raise StorageError(f"cannot acquire lease {key!r}") from err
        return Lease(key, holder, revision)

    async def renew(self, lease: Lease) -> bool:
        """Extend a lease we hold; False if it was lost (revoked, expired, taken)."""
        kv = await self.kv()
        try:
            lease.revision = await kv.update(
                lease.key, lease.holder.model_dump_json().encode(), last=lease.revision
            )
        except (KeyWrongLastSequenceError, KeyNotFoundError):
            return False
        except nats.errors.Error as err:
            raise StorageError(f"cannot renew lease {lease.key!r}") from err
        return True

    async def revoke(self, lease: Lease) -> bool:
        """Delete exactly this lease (compare-and-set on its revision)."""
        kv = await self.kv()
        try:
            await kv.delete(lease.key, last=lease.revision)
        except (KeyWrongLastSequenceError, KeyNotFoundError):
            return False
        except nats.errors.Error as err:
            raise StorageError(f"cannot revoke lease {lease.key!r}") from err
        return True
