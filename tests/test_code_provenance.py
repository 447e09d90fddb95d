"""Code provenance with a real nats-server: a deployed version is signed and loads; a signed
version whose object was replaced, a forged object and record (unsigned), a record whose
signature belongs to other code, and one signed by a key nobody trusts are refused; a route
naming a forged version is refused by the live agent, recorded with the reason, and live
keeps serving its own code; deploying the file for real signs its record."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from evolution_support import deploy_source, scorer_platform, scorer_source, steady_traffic
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from support import eventually

from o_bus.errors import StorageError, UntrustedCodeError
from o_bus.evolution.code_store import CodeStore, CodeVersion, default_cache_dir, digest_of
from o_bus.evolution.provenance import CodeSigner, trusted_keys
from o_bus.evolution.routes import Route, RouteRefused, RouteStore
from o_bus.store import layout
from o_bus.store.provision import ensure_code_store

pytestmark = pytest.mark.slow


async def forge(js: JetStreamContext, real: CodeVersion, source: str, **record: object) -> str:
    """Write ``source`` into the object store and a record for it, as an attacker with write
    access to the buckets would; return its digest."""
    data = source.encode()
    digest = digest_of(data)
    hex_digest = digest.removeprefix("sha256:")
    await (await ensure_code_store(js)).put(hex_digest, data)
    fake = real.model_copy(update={"digest": digest, "size": len(data), **record})
    kv = await js.key_value(layout.CODE_VERSIONS_BUCKET)
    await kv.put(f"scorer.{hex_digest}", fake.model_dump_json().encode())
    return digest


async def test_only_versions_signed_by_a_trusted_key_load_and_route(
    nats_url: str, tmp_path: Path
) -> None:
    async with scorer_platform(nats_url, tmp_path) as (platform, _spec):
        store = CodeStore(platform.js, default_cache_dir())
        real = await deploy_source(platform.js, tmp_path, "signed", scorer_source("1.1.0"))
        assert real.signer in trusted_keys()
        assert real.signature
        assert real.signed_by == "test"
        assert (await store.load("scorer", real.digest)).version == "1.1.0"

        evil = scorer_source("6.6.6", answer="1000000")
        unsigned = await forge(platform.js, real, evil, signer=None, signature=None)
        copied = await forge(platform.js, real, evil + "\n# other bytes\n")
        stranger = CodeSigner(Ed25519PrivateKey.generate())
        strange_source = evil + "\n# signed by a stranger\n"
        untrusted = await forge(
            platform.js,
            real,
            strange_source,
            signer=stranger.public,
            signature=stranger.sign(digest_of(strange_source.encode()), "test"),
        )
        reasons = {
            unsigned: "is not signed",
            copied: "signature does not verify",
            untrusted: "not a trusted key",
        }
        for digest, reason in reasons.items():
            with pytest.raises(UntrustedCodeError) as refused:
                await store.load("scorer", digest)
            assert reason in refused.value.message, refused.value.message

        # A signed version whose stored object is replaced: the content no longer matches the
        # signed digest, so it is refused before anything is imported.
        swapped = await deploy_source(platform.js, tmp_path, "swapped", scorer_source("1.1.1"))
        await (await ensure_code_store(platform.js)).put(swapped.hex, evil.encode())
        fresh = CodeStore(platform.js, tmp_path / "fresh-cache")
        with pytest.raises(StorageError, match="holds different content"):
            await fresh.load("scorer", swapped.digest)

        refusals: list[RouteRefused] = []

        async def on_refusal(msg: Msg) -> None:
            refusals.append(RouteRefused.model_validate(json.loads(msg.data)))

        sub = await platform.nc.subscribe(layout.route_refused_subject("scorer"), cb=on_refusal)
        async with steady_traffic(platform) as seen:
            for digest in reasons:
                await RouteStore(platform.js).update(
                    "scorer", _live_set_to(digest), by="attacker", reason="forged"
                )

            async def all_refused() -> bool:
                return {r.version for r in refusals} >= set(reasons)

            await eventually(all_refused, what="the agent to refuse and record each route")
            answered = seen.answered

            async def still_serving() -> bool:
                return seen.answered > answered + 10

            await eventually(still_serving, what="live to keep serving after the refusals")
        await sub.unsubscribe()
        for refusal in refusals:
            assert reasons[refusal.version or ""] in refusal.reason, refusal
            assert refusal.route.changed_by == "attacker"
        assert not seen.failed, seen.failed
        assert not seen.not_live, seen.not_live  # the forged code (1000000) never answered

        # Deploying the forged file for real signs its record: the operator's deploy is trusted.
        resigned = await deploy_source(platform.js, tmp_path, "resigned", evil)
        assert resigned.digest == unsigned
        assert resigned.signer in trusted_keys()
        assert (await store.load("scorer", unsigned)).version == "6.6.6"


def _live_set_to(digest: str) -> Callable[[Route], Route]:
    """A route change that names ``digest`` as live."""

    def change(route: Route) -> Route:
        return route.model_copy(update={"live": digest})

    return change
