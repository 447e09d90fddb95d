"""`o-bus up` is secure with no flag, and with ``--tls --store-key-file`` encrypts in transit
and at rest: one platform for the module (TLS and a store key), checked from outside as an
attacker with only the URL would, and as the CLI with the credentials `up` generated."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats.errors
import pytest
from nats.aio.client import Client
from platform_process import UpProcess
from support import cli_result, eventually, run_cli

import o_bus.agents.counter as counter_module
from o_bus import send
from o_bus.common.connect import CREDS_ENV, TLS_CA_ENV
from o_bus.security.cli_identity import DATA_DIR_ENV

MARKER = "plaintext-marker-7f3a"


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpProcess]:
    root = Path(tmp_path_factory.mktemp("secure-up"))
    key = root / "store.key"
    key.write_text("k" * 32)
    platform = UpProcess(root / "data", "--splitters", "1", "--tls", "--store-key-file", str(key))
    platform.start()
    try:
        platform.wait_up()
        yield platform
    finally:
        platform.close()


def test_credentials_and_keys_are_readable_by_the_owner_only(up: UpProcess) -> None:
    creds = up.data_dir / "creds"
    seeds = [*creds.glob("*.nk"), *creds.glob("agents/*.nk")]
    assert {p.stem for p in creds.glob("*.nk")} >= {"operator", "client", "splitter"}
    assert {p.stem for p in creds.glob("agents/*.nk")} >= {"counter", "echo"}
    for path in [
        *seeds,
        up.data_dir / "tls" / "server-key.pem",
        up.data_dir / "nats" / "nats-server.conf",
    ]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    config = (up.data_dir / "nats" / "nats-server.conf").read_text()
    assert "k" * 32 not in config  # the store key is passed in the environment


async def test_without_credentials_nothing_connects(up: UpProcess) -> None:
    tls = up.connect_kwargs()["tls"]
    anonymous = Client()
    try:
        with pytest.raises(nats.errors.Error, match="Authorization"):
            await anonymous.connect(up.url, connect_timeout=2, allow_reconnect=False, tls=tls)
    finally:
        await anonymous.close()


async def test_the_cli_uses_the_data_dirs_credentials_and_payloads_are_encrypted_at_rest(
    up: UpProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CREDS_ENV, raising=False)
    monkeypatch.delenv(TLS_CA_ENV, raising=False)
    monkeypatch.setenv(DATA_DIR_ENV, str(up.data_dir))
    code, out, err = await run_cli(
        "send", "echo", "say", json.dumps({"text": MARKER}), "--json", "--nats", up.url
    )
    assert code == 0, err
    assert json.loads(out)["ok"] is True
    client_seed = str(up.seed("client"))
    code, _, err = await run_cli("state", "counter", "--nats", up.url, "--creds", client_seed)
    assert code != 0  # a client may not read agents' state
    store = up.data_dir / "nats" / "jetstream"
    for folder, _, files in os.walk(store):
        for name in files:
            assert MARKER.encode() not in (Path(folder) / name).read_bytes(), name


def _counter_refactor(folder: Path) -> Path:
    source = Path(counter_module.__file__).read_text()
    assert 'version="1.0.0"' in source
    refactor = folder / "counter_refactor.py"
    refactor.write_text(source.replace('version="1.0.0"', 'version="1.0.1"'))
    return refactor


async def test_a_candidate_is_shadowed_and_canaried_under_credentials(
    up: UpProcess, tmp_path: Path
) -> None:
    """A refactor of counter, deployed and evolved by the CLI with the data dir's identity,
    forks live's state, follows live's requests from the WAL and reaches the canary: its own
    identity lets it read what it needs (snapshot, WAL, events) and write its figures."""
    env = {DATA_DIR_ENV: str(up.data_dir)}
    refactor = _counter_refactor(tmp_path)

    async def cli(*args: str) -> dict[str, Any]:
        found: dict[str, Any] = await cli_result(*args, "--nats", up.url, env=env)
        return found

    digest = str((await cli("deploy", "counter", str(refactor)))["digest"])
    nc = Client()
    await nc.connect(up.url, connect_timeout=5, **up.connect_kwargs("client"))
    try:
        await cli(
            "evolve", "start", "counter", digest, "--min-requests", "20",
            "--min-canary-requests", "10", "--min-stage-seconds", "0.5",
        )  # fmt: skip

        async def advanced() -> dict[str, Any] | None:
            for _ in range(10):
                reply = await send(nc, "counter", "increment", {"by": 1})
                assert reply["ok"], reply
            status = await cli("evolve", "status", "counter")
            assert status["status"] in ("requested", "running"), status["decisions"]
            done = [d for d in status["decisions"] if d["action"] == "advance"]
            return done[0] if done else None

        shadow = await eventually(advanced, what="the shadow stage to pass", timeout=120)
    finally:
        await nc.close()
    assert shadow["metrics"]["compared"] >= 20
    assert shadow["metrics"]["differing"] == 0
    await cli("evolve", "abort", "counter")
