"""The embedded nats-server: start, serve JetStream, restart with data, fail loudly."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from nats.aio.client import Client

from o_bus.errors import ConfigurationError
from o_bus.server.embedded import NATS_SERVER_ENV, EmbeddedServer, find_nats_server


async def _connect(url: str) -> Client:
    client = Client()
    await client.connect(url, connect_timeout=5, allow_reconnect=False)
    return client


async def test_serves_jetstream_api(nc: Client) -> None:
    reply = await nc.request("$JS.API.INFO", b"", timeout=5)
    info = json.loads(reply.data)
    assert info["type"] == "io.nats.jetstream.api.v1.account_info_response"
    assert "error" not in info


def test_port_is_chosen_by_the_server(tmp_path: Path) -> None:
    with (
        EmbeddedServer(tmp_path / "a") as first,
        EmbeddedServer(tmp_path / "b") as second,
    ):
        assert first.port != second.port
        assert first.url == f"nats://127.0.0.1:{first.port}"
        assert "port: -1" in first.config_file.read_text()


async def test_restart_on_same_data_dir_keeps_messages(tmp_path: Path) -> None:
    server = EmbeddedServer(tmp_path / "nats")
    server.start()
    try:
        client = await _connect(server.url)
        js = client.jetstream()
        await js.add_stream(name="KEEP", subjects=["keep.>"])
        for i in range(3):
            await js.publish("keep.it", f"m{i}".encode())
        await client.close()
        first_pid = server.pid
        server.stop()

        server.start()
        assert server.pid != first_pid
        client = await _connect(server.url)
        js = client.jetstream()
        info = await js.stream_info("KEEP")
        assert info.state.messages == 3
        assert (await js.get_msg("KEEP", 3)).data == b"m2"
        await client.close()
    finally:
        server.stop()
    assert (server.store_dir / "$G" / "streams" / "KEEP").is_dir()


def test_invalid_sync_interval_reports_the_server_error(tmp_path: Path) -> None:
    server = EmbeddedServer(tmp_path / "nats", sync_interval="every-now-and-then")
    with pytest.raises(ConfigurationError) as failure:
        server.start()
    message = str(failure.value)
    assert "error parsing sync_interval" in message
    assert "every-now-and-then" in message
    assert not server.is_running()
    assert server.pid is None


def test_port_in_use_reports_the_fatal_line(tmp_path: Path) -> None:
    with EmbeddedServer(tmp_path / "a") as first:
        second = EmbeddedServer(tmp_path / "b", port=first.port)
        with pytest.raises(ConfigurationError, match=r"\[FTL\].*address already in use"):
            second.start()
        assert not second.is_running()


async def test_sync_always_and_max_payload_are_applied(tmp_path: Path) -> None:
    with EmbeddedServer(tmp_path / "nats", sync_interval="always", max_payload=2 << 20) as server:
        assert 'sync_interval: "always"' in server.config_file.read_text()
        client = await _connect(server.url)
        assert client.max_payload == 2 << 20
        await client.close()


def test_stop_leaves_no_process_and_is_idempotent(tmp_path: Path) -> None:
    server = EmbeddedServer(tmp_path / "nats")
    server.start()
    pid = server.pid
    assert pid is not None
    assert server.is_running()
    server.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not server.is_running()
    assert server.pid is None
    server.stop()


def test_log_goes_to_data_dir(tmp_path: Path) -> None:
    with EmbeddedServer(tmp_path / "nats") as server:
        assert server.log_file == tmp_path / "nats" / "nats-server.log"
        assert "Server is ready" in server.log_file.read_text()


def test_find_nats_server_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "my-nats-server"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv(NATS_SERVER_ENV, str(fake))
    assert find_nats_server() == fake

    monkeypatch.setenv(NATS_SERVER_ENV, str(tmp_path / "missing"))
    with pytest.raises(ConfigurationError, match=NATS_SERVER_ENV):
        find_nats_server()


def test_find_nats_server_default_is_the_installed_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(NATS_SERVER_ENV, raising=False)
    found = find_nats_server()
    assert found.name.startswith("nats-server")
    assert os.access(found, os.X_OK)


@pytest.mark.skipif(os.name == "nt", reason="uses a shell script as the server binary")
def test_early_exit_shows_fatal_lines(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "broken-nats-server"
    fake.write_text("#!/bin/sh\necho '[INF] starting'\necho '[FTL] cannot go on' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv(NATS_SERVER_ENV, str(fake))
    with pytest.raises(ConfigurationError) as failure:
        EmbeddedServer(tmp_path / "nats").start()
    assert "[FTL] cannot go on" in str(failure.value)
    assert "[INF]" not in str(failure.value)
    assert failure.value.details["returncode"] == 3


@pytest.mark.skipif(os.name == "nt", reason="uses a shell script as the server binary")
def test_not_ready_in_time_kills_the_process(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    fake = tmp_path / "silent-nats-server"
    fake.write_text(f"#!/bin/sh\necho $$ > '{pid_file}'\nexec sleep 30\n")
    fake.chmod(0o755)
    monkeypatch.setenv(NATS_SERVER_ENV, str(fake))
    server = EmbeddedServer(tmp_path / "nats")
    with pytest.raises(ConfigurationError, match="not ready within"):
        server.start(timeout=0.5)
    assert not server.is_running()
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)
