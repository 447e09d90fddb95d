"""Access tokens of the console and the metrics endpoint, and where metrics listen."""

from __future__ import annotations

import argparse
import asyncio
import stat
from pathlib import Path

import pytest

from o_bus.cli.services import _metrics_tokens
from o_bus.cli.up import metrics_address
from o_bus.common.access_tokens import Tokens, token_file
from o_bus.errors import ConfigurationError
from o_bus.handlers.health.http import HttpServer, Response


def test_tokens_are_created_once_readable_by_the_owner_only(tmp_path: Path) -> None:
    tokens = Tokens.load(tmp_path / "data")
    for role in ("operator", "viewer"):
        path = token_file(tmp_path / "data", role)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Tokens.load(tmp_path / "data") == tokens
    assert tokens.operator != tokens.viewer
    assert tokens.role_of(tokens.operator) == "operator"
    assert tokens.role_of(tokens.viewer) == "viewer"
    assert tokens.role_of(tokens.viewer + "x") is None
    assert tokens.role_of("") is None
    assert tokens.role_of(None) is None


async def _get(port: int, token: str | None) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    writer.write(f"GET /metrics HTTP/1.1\r\nHost: x\r\n{auth}\r\n".encode())
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer


async def test_metrics_answer_only_a_console_token_when_asked_to(tmp_path: Path) -> None:
    tokens = Tokens.load(tmp_path)
    server = HttpServer(
        {"/metrics": lambda: Response(200, b"o_bus_up 1\n")}, authorize=tokens.role_of
    )
    await server.start()
    try:
        assert (await _get(server.port, None)).startswith(b"HTTP/1.1 401")
        assert (await _get(server.port, "wrong")).startswith(b"HTTP/1.1 401")
        for token in (tokens.viewer, tokens.operator):
            answer = await _get(server.port, token)
            assert answer.startswith(b"HTTP/1.1 200")
            assert answer.endswith(b"o_bus_up 1\n")
    finally:
        await server.stop()


def test_metrics_off_loopback_need_a_token_by_default(tmp_path: Path) -> None:
    def tokens_for(host: str, auth: str = "auto") -> Tokens | None:
        args = argparse.Namespace(host=host, metrics_auth=auth, data_dir=tmp_path)
        return _metrics_tokens(args)

    assert tokens_for("127.0.0.1") is None
    assert tokens_for("::1") is None
    assert tokens_for("0.0.0.0") == Tokens.load(tmp_path)
    assert tokens_for("127.0.0.1", "token") == Tokens.load(tmp_path)
    assert tokens_for("0.0.0.0", "none") is None


def test_metrics_port_takes_a_port_or_an_address() -> None:
    assert metrics_address("9464", None) == ("127.0.0.1", 9464)
    assert metrics_address(9464, "0.0.0.0") == ("0.0.0.0", 9464)
    assert metrics_address("0.0.0.0:9100", None) == ("0.0.0.0", 9100)
    assert metrics_address("[::]:9100", None) == ("::", 9100)
    for bad in ("x", "host:", "1.2.3.4:99999"):
        with pytest.raises(ConfigurationError):
            metrics_address(bad, None)
    with pytest.raises(ConfigurationError):
        metrics_address("10.0.0.1:9100", "0.0.0.0")
