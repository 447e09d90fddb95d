"""HeldLease: the one way the supervisor, the arbiter and agent processes hold a lease."""

from __future__ import annotations

import asyncio

from nats.aio.client import Client

from o_bus.config import StorageConfig
from o_bus.store.event_records import utc_now
from o_bus.store.lease import HeldLease, LeaseHolder, LeaseStore
from o_bus.store.provision import provision


def _holder(name: str) -> LeaseHolder:
    return LeaseHolder(holder=name, pid=1, acquired_at=utc_now())


async def test_a_second_holder_waits_until_the_first_releases(nc: Client) -> None:
    js = nc.jetstream()
    await provision(js, StorageConfig())
    store = LeaseStore(js)
    first = HeldLease(store, "_leader", ttl=0.4, who="first")
    second = HeldLease(store, "_leader", ttl=0.4, who="second")
    await first.acquire(_holder("first"))
    assert await second.try_acquire(_holder("second")) is None
    waiting = asyncio.create_task(second.acquire(_holder("second")))
    await first.release()
    assert first.lease is None
    lease = await asyncio.wait_for(waiting, 10)
    current = await store.current("_leader")
    assert current is not None
    assert current.holder.holder == "second"
    assert second.lease is lease


async def test_keep_returns_when_the_lease_is_taken_away(nc: Client) -> None:
    js = nc.jetstream()
    await provision(js, StorageConfig())
    store = LeaseStore(js)
    held = HeldLease(store, "_leader", ttl=0.4, who="holder")
    lease = await held.acquire(_holder("holder"))
    assert await held.renew()
    keeping = asyncio.create_task(held.keep())
    assert await store.revoke(lease)  # an operator or a supervisor frees it
    await asyncio.wait_for(keeping, 10)
    assert held.lease is None
    assert not await held.renew()
    await held.release()  # nothing held: nothing to do, no error
