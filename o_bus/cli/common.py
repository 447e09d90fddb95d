"""Shared CLI plumbing: finding the NATS URL, printing, running coroutines."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from o_bus.config import nats_url_from_env
from o_bus.runtime.connect import install_uvloop

__all__ = ["DEFAULT_DATA_DIR", "URL_FILE", "emit", "resolve_url", "run"]

DEFAULT_DATA_DIR = Path(".o-bus")
URL_FILE = "nats-url"
DEFAULT_URL = "nats://127.0.0.1:4222"


def resolve_url(explicit: str | None, data_dir: Path = DEFAULT_DATA_DIR) -> str:
    """--nats, else $O_BUS_NATS_URL, else the URL a local `o-bus up` wrote, else the default."""
    if explicit:
        return explicit
    from_env = nats_url_from_env()
    if from_env:
        return from_env
    written = data_dir / URL_FILE
    if written.is_file():
        return written.read_text().strip()
    return DEFAULT_URL


def emit(value: Any, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(value, separators=(",", ":")) + "\n")
    else:
        sys.stdout.write(json.dumps(value, indent=2) + "\n")
    sys.stdout.flush()


def run(coro: Coroutine[Any, Any, int]) -> int:
    install_uvloop()
    return asyncio.run(coro)
