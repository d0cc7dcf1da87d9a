"""Fixtures for SDS integration tests: a CA, client files, a socket and the server thread."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from scm.keys import Pkcs11Keystore
from scm.pki import LocalCA
from scm.sds import DEFAULT, ROOTCA, SecretRenderer, SecretStore, ServerOptions
from scm.sds.issuer import CertificateIssuer
from scm.sds.listeners import UnixListener
from scm.sds.renewal import Backoff
from tests.certs import TestCA, cert_pem, key_pem
from tests.integration.sds.harness import ServerThread, short_socket_path
from tests.keystores import label, token_keystore

__all__ = ["label", "token_keystore"]


@pytest.fixture
def ca() -> TestCA:
    return TestCA()


@pytest.fixture
def client_files(ca: TestCA, tmp_path: Path) -> tuple[Path, Path]:
    """A client certificate and key that Envoy's ROOTCA accepts."""
    certificate, key = ca.issue("client")
    cert_path, key_path = tmp_path / "client.pem", tmp_path / "client-key.pem"
    cert_path.write_bytes(cert_pem(certificate))
    key_path.write_bytes(key_pem(key))
    return cert_path, key_path


@pytest.fixture
def store(ca: TestCA) -> SecretStore:
    """A store serving ROOTCA and a default credential from ``ca``."""
    store = SecretStore()
    store.put(ROOTCA, ca.bundle())
    store.put(DEFAULT, ca.credential())
    return store


@pytest.fixture
def socket_path() -> Iterator[Path]:
    path = short_socket_path("sds.sock")
    yield path
    shutil.rmtree(path.parent, ignore_errors=True)


@pytest.fixture
def start_server(socket_path: Path, ca: TestCA) -> Iterator[Callable[..., ServerThread]]:
    """Start an SDS server on ``socket_path`` whose store holds ROOTCA (and what tests add)."""
    started: list[ServerThread] = []

    def start(renderer: SecretRenderer | None = None, **options: object) -> ServerThread:
        store = SecretStore()
        store.put(ROOTCA, ca.bundle())
        unix = (UnixListener(socket_path),)
        server_options = ServerOptions(unix=unix, **options)  # type: ignore[arg-type]
        thread = ServerThread(store, renderer or SecretRenderer(), server_options)
        started.append(thread)
        return thread

    yield start
    for thread in started:
        thread.close()


@pytest.fixture
def local_ca(tmp_path: Path, token_keystore: Pkcs11Keystore, label: str) -> LocalCA:
    """A real local CA (its key in the shared SoftHSM token) under ``tmp_path``.

    It signs ``localhost`` (Envoy's listener name in these tests), as ``scm up``'s does.
    """
    ca = LocalCA.init(tmp_path, token_keystore, "cluster.local", key_label=f"ca-{label}")
    ca.policy = replace(ca.policy, dns_suffixes=("localhost",))
    return ca


@pytest.fixture
def start_issuing(socket_path: Path) -> Iterator[Callable[..., ServerThread]]:
    """Start an SDS server on ``socket_path`` whose store asks ``issuer`` for everything."""
    started: list[ServerThread] = []

    def start(
        issuer: CertificateIssuer,
        renderer: SecretRenderer | None = None,
        backoff: Backoff | None = None,
    ) -> ServerThread:
        options = ServerOptions(unix=(UnixListener(socket_path),))
        thread = ServerThread(
            SecretStore(issuer), renderer or SecretRenderer(), options, issuer, backoff
        )
        started.append(thread)
        return thread

    yield start
    for thread in started:
        thread.close()
