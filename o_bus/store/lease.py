"""Leases in a JetStream KV bucket: who may act for a key (an agent, the supervisor).

Acquire is a create (fails while someone holds the key); renew is a compare-and-set on the
revision we hold; an unrenewed lease disappears when the bucket's TTL runs out. A lease says
who *should* act; the fence on the event log is what stops a holder that lost it.
"""

from __future__ import annotations

import asyncio
import logging
import time
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

__all__ = ["STORE_OUTAGE_TTLS", "HeldLease", "Lease", "LeaseHolder", "LeaseStore"]

log = logging.getLogger(__name__)
STORE_OUTAGE_TTLS = 6.0
"""TTLs a holder keeps its lease while the store cannot be reached (12 s for a 2 s TTL): longer
than a JetStream leader election (4-9 s), short enough that a holder cut off from a healthy
cluster stops acting soon after a successor may have taken over."""


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


class HeldLease:
    """One key's lease as its holder sees it: acquire it (waiting while another holds it), keep it
    renewed every quarter of its TTL, release it. The supervisor and the arbiter lead with one;
    every agent process holds its agent's lease with one.

    A store that cannot be reached is a failed attempt to acquire (the caller tries again). For a
    renewal it is not yet a loss: while the bucket has no leader (a JetStream cluster electing
    one after a server died, 4 to 9 s) nobody can take the lease either, and the bucket's own TTL
    decides when it expires. So the holder keeps it through an outage of up to
    ``STORE_OUTAGE_TTLS`` TTLs, and learns on the first renewal that reaches the store whether it
    expired meanwhile. If it did and nobody took it, the holder takes it again (a create, as
    anyone would); stepping down instead would turn every election into a restart. Both are
    logged with ``who``; the fence on the event log still stops a holder that lost it.
    """

    def __init__(self, leases: LeaseStore, key: str, ttl: float, who: str) -> None:
        self.leases, self.key, self.ttl, self.who = leases, key, ttl, who
        self.lease: Lease | None = None
        self.renewed_at = time.monotonic()  # last time the lease was known to be ours
        self._unreachable = False  # the last renewal could not reach the store

    @property
    def interval(self) -> float:
        """How often the lease is renewed, and how often a waiting holder tries again."""
        return self.ttl / 4

    def renewal_due(self) -> bool:
        return time.monotonic() - self.renewed_at > self.interval

    async def try_acquire(self, holder: LeaseHolder) -> Lease | None:
        """Take the lease if nobody holds it; ``None`` if someone does or the store failed."""
        try:
            lease = await self.leases.acquire(self.key, holder)
        except StorageError as err:
            log.warning("%s: cannot acquire lease %r: %s", self.who, self.key, err.message)
            return None
        if lease is not None:
            self.lease, self.renewed_at = lease, time.monotonic()
        return lease

    async def acquire(self, holder: LeaseHolder) -> Lease:
        """Wait until the lease is ours."""
        while True:
            lease = await self.try_acquire(holder)
            if lease is not None:
                return lease
            await asyncio.sleep(self.interval)

    async def renew(self) -> bool:
        """Extend the lease; False (and no longer held) when it was lost."""
        if self.lease is None:
            return False
        try:
            renewed = await self.leases.renew(self.lease)
        except StorageError as err:
            outage = time.monotonic() - self.renewed_at
            keep = outage < self.ttl * STORE_OUTAGE_TTLS
            log.warning(
                "%s: cannot renew lease %r for %.1fs: %s%s",
                self.who,
                self.key,
                outage,
                err.message,
                "; still held while the store is unreachable" if keep else "; giving it up",
            )
            self._unreachable = keep
            if keep:
                return True
            renewed = False
        if not renewed and self._unreachable:
            # It expired while the store was down: take it again if nobody else did.
            renewed = await self.try_acquire(self.lease.holder) is not None
            log.warning(
                "%s: lease %r expired while the store was unreachable; %s",
                self.who,
                self.key,
                "taken again" if renewed else "someone else holds it",
            )
        self._unreachable = False
        if renewed:
            self.renewed_at = time.monotonic()
        else:
            self.lease = None
        return renewed

    async def keep(self) -> None:
        """Renew the lease every ``interval``; return when it is lost."""
        while True:
            await asyncio.sleep(self.interval)
            if not await self.renew():
                return

    async def release(self) -> None:
        """Give the lease back so a successor need not wait for its TTL (best effort)."""
        lease, self.lease = self.lease, None
        if lease is None:
            return
        try:
            await self.leases.revoke(lease)
        except StorageError as err:  # it expires by itself; a successor waits for its TTL
            log.warning(
                "%s: could not release lease %r: %s (%r)",
                self.who,
                self.key,
                err.message,
                err.__cause__,
            )
