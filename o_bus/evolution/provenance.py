"""Who deployed a code version, signed: ed25519 over its digest, checked before it runs.

The operator's signing key is ``<data dir>/keys/code-signing.key`` (created on first use,
mode 0600); the public keys whose signatures agents and candidates accept are the lines of
``<data dir>/trusted-keys`` (``ed25519:<base64> [comment]``; the signing key's own is added
when it is created), or of ``$O_BUS_TRUSTED_KEYS`` where a process has no data dir to read
(sandboxed candidates). A version signed by no trusted key, or not signed at all, is never
imported.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from o_bus.common.urls import DEFAULT_DATA_DIR
from o_bus.errors import UntrustedCodeError

__all__ = [
    "DATA_DIR_ENV",
    "TRUSTED_KEYS_ENV",
    "CodeSigner",
    "data_dir",
    "operator_signer",
    "signed_statement",
    "trusted_keys",
    "trusted_keys_text",
    "verify",
]

DATA_DIR_ENV = "O_BUS_DATA_DIR"
TRUSTED_KEYS_ENV = "O_BUS_TRUSTED_KEYS"
KEY_FILE = Path("keys") / "code-signing.key"
TRUSTED_FILE = "trusted-keys"
_PREFIX = "ed25519:"


def data_dir() -> Path:
    """``$O_BUS_DATA_DIR``, else ``.o-bus`` in the working directory."""
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)


def signed_statement(digest: str, deployed_by: str) -> bytes:
    """What is signed: the content's digest and who deployed it."""
    return f"o-bus code version\n{digest}\n{deployed_by}\n".encode()


def _public_text(key: Ed25519PublicKey) -> str:
    return _PREFIX + base64.b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


@dataclass(frozen=True)
class CodeSigner:
    """A private signing key and the public key it is known by."""

    key: Ed25519PrivateKey

    @property
    def public(self) -> str:
        return _public_text(self.key.public_key())

    def sign(self, digest: str, deployed_by: str) -> str:
        return base64.b64encode(self.key.sign(signed_statement(digest, deployed_by))).decode()


def operator_signer(folder: Path | None = None) -> CodeSigner:
    """The operator's signing key from the data dir; created (0600) and trusted on first use."""
    folder = folder or data_dir()
    path = folder / KEY_FILE
    if path.is_file():
        return CodeSigner(Ed25519PrivateKey.from_private_bytes(base64.b64decode(path.read_text())))
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes_raw()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(base64.b64encode(raw).decode() + "\n")
    signer = CodeSigner(key)
    trusted = folder / TRUSTED_FILE
    with trusted.open("a") as out:
        out.write(f"{signer.public} code signing key of this data dir\n")
    trusted.chmod(0o644)
    return signer


def _parse(text: str) -> dict[str, Ed25519PublicKey]:
    keys: dict[str, Ed25519PublicKey] = {}
    for line in text.splitlines():
        word = line.split("#", 1)[0].strip().split(" ", 1)[0]
        if word.startswith(_PREFIX):
            try:
                raw = base64.b64decode(word.removeprefix(_PREFIX), validate=True)
                keys[word] = Ed25519PublicKey.from_public_bytes(raw)
            except ValueError:
                continue
    return keys


def trusted_keys(folder: Path | None = None) -> dict[str, Ed25519PublicKey]:
    """The trusted public keys (``$O_BUS_TRUSTED_KEYS``, else the data dir's file)."""
    from_env = os.environ.get(TRUSTED_KEYS_ENV)
    if from_env is not None:
        return _parse(from_env)
    path = (folder or data_dir()) / TRUSTED_FILE
    try:
        return _parse(path.read_text())
    except FileNotFoundError:
        return {}


def trusted_keys_text(folder: Path | None = None) -> str:
    """The trusted keys as ``$O_BUS_TRUSTED_KEYS`` carries them to a sandboxed process."""
    return "\n".join(trusted_keys(folder))


def verify(digest: str, deployed_by: str, signer: str | None, signature: str | None) -> None:
    """Raise :class:`UntrustedCodeError` unless ``signature`` by the trusted key ``signer``
    covers ``digest`` and ``deployed_by``."""
    if not signer or not signature:
        raise UntrustedCodeError(f"code version {digest} is not signed: refused")
    key = trusted_keys().get(signer)
    if key is None:
        raise UntrustedCodeError(
            f"code version {digest} is signed by {signer}, which is not a trusted key: refused"
        )
    try:
        key.verify(base64.b64decode(signature), signed_statement(digest, deployed_by))
    except (InvalidSignature, ValueError):
        raise UntrustedCodeError(
            f"code version {digest}: the signature does not verify (forged or altered record): "
            "refused"
        ) from None
