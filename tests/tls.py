"""Throw-away TLS material for tests: a CA and a server certificate for loopback, as files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.certs import TestCA, cert_pem, key_pem


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


def make_tls(directory: Path, host: str = "127.0.0.1") -> TlsFiles:
    """Write ca.pem, server.pem and server-key.pem for ``host`` (an IP or a DNS name)."""
    ca = TestCA("scm test CA")
    certificate, key = ca.issue(host, hours=24)
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    files.ca.write_bytes(ca.pem())
    files.cert.write_bytes(cert_pem(certificate))
    files.key.write_bytes(key_pem(key))
    return files
