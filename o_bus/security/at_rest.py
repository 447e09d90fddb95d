"""Encryption at rest: JetStream encrypts its store with a key from a file or the environment.

The key never appears in the config file: the server reads it from its environment
(``$O_BUS_STORE_KEY``), which `o-bus up` fills from ``--store-key-file`` or its own
environment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from o_bus.errors import ConfigurationError
from o_bus.server.config import EncryptionConfig

__all__ = ["CIPHERS", "STORE_KEY_ENV", "store_encryption"]

STORE_KEY_ENV: Final = "O_BUS_STORE_KEY"
CIPHERS: Final = ("chacha", "aes")
_MIN_KEY: Final = 16


def store_encryption(
    key_file: Path | None, cipher: str = "chacha"
) -> tuple[EncryptionConfig, dict[str, str]] | None:
    """The ``jetstream`` encryption settings and the server environment carrying the key:
    from ``key_file``, else ``$O_BUS_STORE_KEY``; None when neither is given."""
    if cipher not in CIPHERS:
        raise ConfigurationError(f"cipher must be one of {', '.join(CIPHERS)}, got {cipher!r}")
    if key_file is not None:
        try:
            key = key_file.read_text(encoding="utf-8").strip()
        except OSError as err:
            raise ConfigurationError(f"cannot read the store key {key_file}: {err}") from err
    else:
        key = os.environ.get(STORE_KEY_ENV, "").strip()
        if not key:
            return None
    if len(key) < _MIN_KEY:
        raise ConfigurationError(f"the store key must be at least {_MIN_KEY} characters")
    return EncryptionConfig(key="$" + STORE_KEY_ENV, cipher=cipher), {STORE_KEY_ENV: key}
