"""Where the NATS server is: the URL every command and service connects to."""

from __future__ import annotations

from pathlib import Path

from o_bus.config import nats_url_from_env

__all__ = ["DEFAULT_DATA_DIR", "DEFAULT_URL", "URL_FILE", "resolve_url"]

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
