"""One SDS server: the store, the gRPC service on its listeners, and its metrics."""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from scm.errors import UnavailableError
from scm.sds.listeners import (
    TlsListener,
    UnixListener,
    bind_unix,
    owner_only_umask,
    prepare_socket_path,
    secure_unix_socket,
)
from scm.sds.metrics import SdsMetrics
from scm.sds.peergate import PeerGate, RefusingHandler
from scm.sds.render import SecretRenderer
from scm.sds.service import Limits, SecretDiscoveryService
from scm.sds.store import SecretStore
from scm.sds.wire import sds_method_handlers

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024


@dataclass(frozen=True)
class ServerOptions:
    """Listeners and limits of one server."""

    unix: Sequence[UnixListener] = ()
    tls: Sequence[TlsListener] = ()
    limits: Limits = field(default_factory=Limits)
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    allowed_uids: frozenset[int] | None = None  # None: any process that can open the socket


class SdsServer:
    """Serves ``store`` over SDS until :meth:`stop`."""

    def __init__(
        self,
        store: SecretStore,
        renderer: SecretRenderer,
        options: ServerOptions,
    ) -> None:
        self.store = store
        self.options = options
        self.metrics = SdsMetrics(store)
        self.service = SecretDiscoveryService(store, renderer, self.metrics, options.limits)
        self._server: grpc.aio.Server | None = None
        self._refusal: grpc.aio.Server | None = None
        self._gates: list[PeerGate] = []
        self._private_dir: Path | None = None
        self.tls_ports: list[int] = []

    @property
    def ready(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        size = self.options.max_message_bytes
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", size),
                # Envoy keeps its SDS streams open for days; let idle keepalives through.
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.so_reuseport", 0),
            ]
        )
        server.add_generic_rpc_handlers((sds_method_handlers(self.service),))
        unix = list(self.options.unix)
        if self.options.allowed_uids is not None and unix:
            unix = await self._start_gates(unix)
        for listener in unix:
            bind_unix(server, listener)
        for tls in self.options.tls:
            try:
                port = server.add_secure_port(tls.address(), tls.credentials())
            except RuntimeError as exc:
                raise UnavailableError(f"cannot listen on {tls.address()}: {exc}") from None
            self.tls_ports.append(port)
        await server.start()
        for listener in self.options.unix:
            secure_unix_socket(listener)
            log.info("SDS listening on %s (mode %o)", listener.path, listener.mode)
        self._server = server

    async def _start_gates(self, public: list[UnixListener]) -> list[UnixListener]:
        """Put a uid-checking gate on each public socket; returns the private ones to bind."""
        assert self.options.allowed_uids is not None
        self._private_dir = Path(tempfile.mkdtemp(prefix="scm-sds-"))
        refusal_path = self._private_dir / "refused.sock"
        self._refusal = grpc.aio.server()
        self._refusal.add_generic_rpc_handlers((RefusingHandler(),))
        bind_unix(self._refusal, UnixListener(refusal_path))
        await self._refusal.start()
        private = []
        for index, listener in enumerate(public):
            backend = UnixListener(self._private_dir / f"sds-{index}.sock")
            gate = PeerGate(
                backend.path,
                refusal_path,
                self.options.allowed_uids,
                lambda _uid: self.metrics.rejected.labels("peer_not_allowed").inc(),
            )
            prepare_socket_path(listener.path)
            with owner_only_umask():
                await gate.start(listener.path)
            self._gates.append(gate)
            private.append(backend)
        return private

    async def stop(self, grace: float | None = 1.0) -> None:
        if self._server is None:
            return
        server, self._server = self._server, None
        for gate in self._gates:
            await gate.stop()
        await server.stop(grace)
        if self._refusal is not None:
            await self._refusal.stop(0)
        for listener in self.options.unix:
            listener.path.unlink(missing_ok=True)
        if self._private_dir is not None:
            shutil.rmtree(self._private_dir, ignore_errors=True)
