"""Run the real SDS server in a thread and real Envoy 1.40 against it.

The server runs on its own event loop in a background thread so tests stay plain
synchronous code: they change the store through :meth:`ServerThread.call`, talk TLS to
Envoy with Python's ``ssl`` and poll, bounded, for the outcome.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import random
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from cryptography import x509

from scm.sds import SdsServer, SecretRenderer, SecretStore, ServerOptions
from scm.sds.daemon import running
from scm.sds.issuer import CertificateIssuer
from scm.sds.proxy import EnvoyProcess, bootstrap, sds_tls_socket
from scm.sds.renewal import Backoff
from scm.sds.service import StreamInfo

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float = 20.0, what: str = "condition") -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = condition()
            if result:
                return result
        except Exception as exc:
            last_error = exc
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last error: {last_error})")


class ServerThread:
    """An :class:`SdsServer` running on an event loop in a daemon thread.

    Started the way ``scm sds serve`` starts it (:func:`scm.sds.daemon.running`), with
    certificate renewal when an ``issuer`` is given.
    """

    def __init__(
        self,
        store: SecretStore,
        renderer: SecretRenderer,
        options: ServerOptions,
        issuer: CertificateIssuer | None = None,
        backoff: Backoff | None = None,
    ):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.store = store
        self._stack = contextlib.AsyncExitStack()
        started = running(store, renderer, options, None, issuer, backoff)
        self.server: SdsServer = self.run(self._stack.enter_async_context(started)).server

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the server's loop and return its result."""

        async def wrapper() -> T:
            return fn()

        return self.run(wrapper())

    def run(self, coroutine: Any, timeout: float = 30.0) -> Any:
        future: concurrent.futures.Future[Any] = asyncio.run_coroutine_threadsafe(
            coroutine, self.loop
        )
        return future.result(timeout)

    def stream_for(self, name: str) -> StreamInfo:
        """The one open stream that watches exactly ``name``."""
        streams = self.call(lambda: list(self.server.service.streams.values()))
        (info,) = [s for s in streams if s.names == {name}]
        return info

    def metric(self, name: str, **labels: str) -> float:
        value = self.server.metrics.registry.get_sample_value(name, labels)
        return value or 0.0

    def close(self) -> None:
        try:
            self.run(self._stack.aclose())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
            self.loop.close()


ECHO = [
    {
        "name": "envoy.filters.network.echo",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.echo.v3.Echo"
        },
    }
]


class Envoy(EnvoyProcess):
    """Envoy with a TLS echo listener (client certificate required), all of it over SDS."""

    def __init__(self, workdir: Path, socket_path: Path, api_type: str = "GRPC") -> None:
        config = bootstrap(
            "sidecar~127.0.0.1~test.default~cluster.local",
            socket_path,
            0,
            ECHO,
            sds_tls_socket(api_type, require_client_certificate=True),
        )
        super().__init__(
            workdir / f"envoy-{api_type}",
            config,
            os.environ.get("SCM_TEST_ENVOY_LOG_LEVEL", "info"),
        )

    def __enter__(self) -> Envoy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stat(self, name: str) -> int:
        for line in self.admin(f"/stats?filter=^{name}$").splitlines():
            key, _, value = line.partition(": ")
            if key == name:
                return int(value)
        return 0


def handshake(port: int, ca_pem: bytes, client_cert: Path, client_key: Path) -> x509.Certificate:
    """Connect with TLS, verify Envoy's chain against ``ca_pem``; Envoy's leaf certificate."""
    context = ssl.create_default_context(cadata=ca_pem.decode())
    context.load_cert_chain(client_cert, client_key)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        tls.sendall(b"ping\n")
        assert tls.recv(64) == b"ping\n"
        return x509.load_der_x509_certificate(der)


def short_socket_path(name: str) -> Path:
    """A socket path short enough for sun_path (pytest's tmp_path can be too long)."""
    directory = Path(f"/tmp/scm-sds-{os.getpid()}-{random.randrange(1 << 30):x}")
    directory.mkdir(mode=0o700)
    return directory / name


def stop_cleanly(process: subprocess.Popen[str], socket_path: Path) -> None:
    """SIGTERM a server process: it must exit 0, without a traceback, its socket gone."""
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert not socket_path.exists()
