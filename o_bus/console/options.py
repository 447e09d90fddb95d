"""Command-line options of the console, shared by `o-bus console` and `o-bus run console`.

Kept free of web imports: the CLI builds its parser on every command."""

from __future__ import annotations

import argparse
from pathlib import Path

from o_bus.common.urls import DEFAULT_DATA_DIR

__all__ = ["DEFAULT_CONSOLE_PORT", "add_console_arguments"]

DEFAULT_CONSOLE_PORT = 9465


def add_console_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the console listens and keeps its tokens (the connection's own arguments,
    ``--nats`` and who connects how, are the CLI's)."""
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1)")
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_CONSOLE_PORT,
        help=f"HTTP port (default: {DEFAULT_CONSOLE_PORT}; 0: any free one)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="where the access tokens are kept, created on first use (default: .o-bus)",
    )
