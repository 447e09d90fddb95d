"""HeldLease: the one way the supervisor, the arbiter and agent processes hold a lease."""

from __future__ import annotations

import asyncio
from pathlib import Path

from nats.aio.client import Client
from support import eventually

from o_bus.common.connect import connect
from o_bus.config import StorageConfig
from o_bus.errors import StorageError
from o_bus.server.embedded import EmbeddedServer
from o_bus.store.event_records import utc_now
from o_bus.store.lease import STORE_OUTAGE_TTLS, HeldLease, LeaseHolder, LeaseStore
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


async def test_a_held_lease_outlives_a_store_outage_shorter_than_its_grace(tmp_path: Path) -> None:
    """While the store has no leader nobody can take the lease: the holder keeps it (a server
    election must not restart every agent), until the outage lasts too many TTLs."""
    server = EmbeddedServer(tmp_path / "nats")
    server.start()
    try:
        async with connect(server.url, "lease-outage", timeout=1.0) as (_, js):
            await provision(js, StorageConfig())
            held = HeldLease(LeaseStore(js), "_leader", ttl=0.4, who="holder")
            await held.acquire(_holder("holder"))
            server.kill()
            assert await held.renew()  # the store cannot be reached: still held
            assert held.lease is not None
            await asyncio.sleep(0.5)  # longer than the TTL: the bucket expires the lease
            await asyncio.to_thread(server.restart)

            async def taken_again() -> bool:
                if not await held.renew():
                    return False
                try:
                    current = await LeaseStore(js).current("_leader")
                except StorageError:  # not reconnected yet
                    return False
                return current is not None and current.holder.holder == "holder"

            await eventually(taken_again, what="the expired lease taken again by its holder")

            server.kill()
            assert await held.renew()
            held.renewed_at -= 0.4 * STORE_OUTAGE_TTLS  # the outage has lasted too long
            assert not await held.renew()
            assert held.lease is None
    finally:
        server.stop()
