"""One SDS server: the store, the gRPC service on its listeners, and its metrics."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
from envoy.service.secret.v3 import sds_pb2_grpc

from scm.errors import UnavailableError
from scm.sds.listeners import TlsListener, UnixListener, bind_unix, secure_unix_socket
from scm.sds.metrics import SdsMetrics
from scm.sds.render import SecretRenderer
from scm.sds.service import Limits, SecretDiscoveryService
from scm.sds.store import SecretStore

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024


@dataclass(frozen=True)
class ServerOptions:
    """Listeners and limits of one server."""

    unix: Sequence[UnixListener] = ()
    tls: Sequence[TlsListener] = ()
    limits: Limits = field(default_factory=Limits)
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES


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
        sds_pb2_grpc.add_SecretDiscoveryServiceServicer_to_server(self.service, server)
        for listener in self.options.unix:
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

    async def stop(self, grace: float | None = 1.0) -> None:
        if self._server is None:
            return
        server, self._server = self._server, None
        await server.stop(grace)
        for listener in self.options.unix:
            listener.path.unlink(missing_ok=True)
