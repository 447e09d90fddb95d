"""TLS material: a private CA, a server certificate and a client certificate, generated once
into ``<data dir>/tls`` (keys 0600), or supplied by the operator (see docs/security.md)."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import ipaddress
import os
import socket
import sys
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from o_bus.common.connect import ConnectOptions
from o_bus.errors import ConfigurationError
from o_bus.server.config import TlsConfig

__all__ = ["TLS_DIR", "TlsFiles", "ensure_tls"]

TLS_DIR: Final = "tls"
_VALID: Final = datetime.timedelta(days=825)


@dataclasses.dataclass(frozen=True, slots=True)
class TlsFiles:
    """PEM files: the CA that signs both sides, the server's and a client's cert and key."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def in_dir(cls, directory: Path) -> TlsFiles:
        return cls(
            ca=directory / "ca.pem",
            server_cert=directory / "server.pem",
            server_key=directory / "server-key.pem",
            client_cert=directory / "client.pem",
            client_key=directory / "client-key.pem",
        )

    def check(self) -> TlsFiles:
        missing = [str(p) for p in dataclasses.astuple(self) if not Path(p).is_file()]
        if missing:
            raise ConfigurationError(f"TLS files missing: {', '.join(missing)}")
        return self

    def server(self, *, verify_clients: bool = False) -> TlsConfig:
        """The server side: its certificate. Clients prove who they are with their nkey;
        ``verify_clients`` also asks them for a certificate signed by the CA."""
        return TlsConfig(
            str(self.server_cert), str(self.server_key), str(self.ca), verify=verify_clients
        )

    def client_options(self) -> ConnectOptions:
        """The client side (merge with an identity): verify the server, present the cert."""
        return ConnectOptions(
            tls_ca_file=self.ca, tls_cert_file=self.client_cert, tls_key_file=self.client_key
        )


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write(path: Path, data: bytes, private: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    ca_name: x509.Name,
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    usage: tuple[x509.ObjectIdentifier, ...],
    hosts: tuple[str, ...] = (),
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALID)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(usage)), critical=False)
    )
    if hosts:
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def ensure_tls(directory: Path, hosts: tuple[str, ...] = ()) -> TlsFiles:
    """The TLS files in ``directory``, generated (CA, server, client) if there are none.

    The server certificate is valid for localhost, 127.0.0.1, ::1, this machine's name and
    ``hosts``."""
    files = TlsFiles.in_dir(directory)
    if files.ca.exists():
        return files.check()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "o-bus CA")])
    now = datetime.datetime.now(datetime.UTC)
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALID)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    all_hosts = ("localhost", "127.0.0.1", "::1", socket.gethostname(), *hosts)
    server_key, client_key = _key(), _key()
    # The server certificate also authenticates a node to its peers on cluster routes.
    both = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)
    server = _issue("o-bus server", server_key, ca_name, ca_key, usage=both, hosts=all_hosts)
    client = _issue(
        "o-bus client", client_key, ca_name, ca_key, usage=(ExtendedKeyUsageOID.CLIENT_AUTH,)
    )
    pem = serialization.Encoding.PEM
    _write(files.server_cert, server.public_bytes(pem), private=False)
    _write(files.server_key, _pem_key(server_key), private=True)
    _write(files.client_cert, client.public_bytes(pem), private=False)
    _write(files.client_key, _pem_key(client_key), private=True)
    _write(files.ca, ca.public_bytes(pem), private=False)  # last: its presence means complete
    return files


def main(argv: list[str] | None = None) -> int:
    """``python -m o_bus.security.tls DIR --host NAME...``: a CA and certificates for deploy."""
    parser = argparse.ArgumentParser(prog="python -m o_bus.security.tls", description=main.__doc__)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--host", action="append", default=[], help="a name clients use")
    args = parser.parse_args(argv)
    files = ensure_tls(args.directory, tuple(args.host))
    print(f"CA: {files.ca}\nserver: {files.server_cert}\nclient: {files.client_cert}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
