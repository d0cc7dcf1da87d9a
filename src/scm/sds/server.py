"""One SDS server: the store, the gRPC service on its listeners, and its metrics.

Start-up either completes or leaves nothing behind: every step registers its undoing
(socket locks, the private directory, gates, bound sockets, the gRPC server) and a
failure part-way undoes the steps already taken, in reverse.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from prometheus_client import CollectorRegistry

from scm.errors import UnavailableError
from scm.sds.admission import (
    DEFAULT_DESCRIPTOR_RESERVE,
    DESCRIPTORS_PER_RELAYED_CONNECTION,
    AdmissionLimits,
    RefusalLog,
    connection_cap,
    descriptor_budget,
)
from scm.sds.listeners import (
    TlsListener,
    UnixListener,
    bind_unix,
    secure_unix_socket,
)
from scm.sds.metrics import SdsMetrics
from scm.sds.peergate import PeerGate, open_gate, refusal_recorder
from scm.sds.render import SecretRenderer
from scm.sds.service import Limits, SecretDiscoveryService, describe_stream
from scm.sds.store import SecretStore
from scm.sds.wire import sds_method_handlers
from scm.statelock import ServingLock

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024
DEFAULT_MAX_STREAMS_PER_CONNECTION = 100
# gRPC core queues new calls until the application asks for them (grpc.aio asks one at a
# time); from grpcio 1.82 it rejects queued calls at random between a soft and a hard
# limit (defaults 1000 and 3000), which a burst of reconnecting Envoys exceeds. The
# queue must hold at least twice the streams the server admits.
PENDING_CALLS_PER_STREAM = 2
PENDING_CALLS_FLOOR = 1000
# A queued call is cancelled after this long unrequested (gRPC's default: 30 s). A burst
# of 10,000 reconnecting Envoys on a loaded node takes longer than that to drain, and a
# cancelled Envoy only retries into the same queue: serve late rather than not at all.
PENDING_CALL_WAIT_S = 120


@dataclass(frozen=True)
class ServerOptions:
    """Listeners and limits of one server."""

    unix: Sequence[UnixListener] = ()
    tls: Sequence[TlsListener] = ()
    limits: Limits = field(default_factory=Limits)
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    admission: AdmissionLimits = field(default_factory=AdmissionLimits)
    max_streams_per_connection: int = DEFAULT_MAX_STREAMS_PER_CONNECTION
    descriptor_reserve: int = DEFAULT_DESCRIPTOR_RESERVE
    workers: int = 1  # processes serving (scm.sds.workers); 1: this process alone
    # Share the TCP port with sibling processes: only a worker pool's workers set it,
    # their parent holding the port's serving lock.
    reuse_port: bool = False


def grpc_server_options(options: ServerOptions, connection_limit: int) -> list[tuple[str, int]]:
    """The gRPC core settings of a server with ``options``."""
    pending = max(PENDING_CALLS_FLOOR, PENDING_CALLS_PER_STREAM * options.limits.max_streams)
    return [
        ("grpc.max_receive_message_length", options.max_message_bytes),
        # Envoy keeps its SDS streams open for days; let idle keepalives through.
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        # A second server on the same port must fail to bind, not share the port (a
        # worker pool's workers share it: their parent holds the port's lock).
        ("grpc.so_reuseport", 1 if options.reuse_port else 0),
        ("grpc.server.max_pending_requests", pending),
        ("grpc.server.max_pending_requests_hard_limit", 2 * pending),
        ("grpc.server_max_unrequested_time_in_server", PENDING_CALL_WAIT_S),
        ("grpc.max_concurrent_streams", options.max_streams_per_connection),
        ("grpc.max_allowed_incoming_connections", connection_limit),
    ]


class SdsServer:
    """Serves ``store`` over SDS until :meth:`stop`."""

    def __init__(
        self,
        store: SecretStore,
        renderer: SecretRenderer,
        options: ServerOptions,
        refusal_log: RefusalLog | None = None,
    ) -> None:
        self.store = store
        self.options = options
        self.metrics = SdsMetrics(store)
        self.refusal_log = refusal_log or RefusalLog()
        self.service = SecretDiscoveryService(
            store, renderer, self.metrics, options.limits, self.refusal_log
        )
        self._server: grpc.aio.Server | None = None
        self._undo: contextlib.AsyncExitStack | None = None
        self._grace: float | None = 1.0
        self.gates: list[PeerGate] = []
        self.tls_ports: list[int] = []

    @property
    def ready(self) -> bool:
        return self._server is not None

    @property
    def metrics_registry(self) -> CollectorRegistry:
        return self.metrics.registry

    async def refresh(self, with_streams: bool) -> None:
        """Nothing to gather: this process holds every stream (see :mod:`.monitor`)."""

    def stream_entries(self) -> list[dict[str, Any]]:
        return [describe_stream(info) for info in self.service.streams.values()]

    async def start(self) -> None:
        """Listen on every listener, or raise having undone everything already started."""
        async with contextlib.AsyncExitStack() as undo:
            for listener in self.options.unix:
                lock = ServingLock.for_socket(listener.path)
                lock.acquire()  # LockBusyError: another server owns this socket
                undo.callback(lock.release)
            budget = descriptor_budget(self.options.descriptor_reserve)
            admission = self.options.admission
            gated = admission.gated and bool(self.options.unix)
            per_connection = DESCRIPTORS_PER_RELAYED_CONNECTION if gated else 1
            cap = connection_cap(admission.max_connections, budget, per_connection)
            server = grpc.aio.server(options=grpc_server_options(self.options, max(cap, 1)))
            server.add_generic_rpc_handlers((sds_method_handlers(self.service),))
            unix = list(self.options.unix)
            if gated:
                unix = await self._start_gates(unix, cap, undo)
            for listener in unix:
                bind_unix(server, listener)
                undo.callback(listener.path.unlink, missing_ok=True)
            for tls in self.options.tls:
                try:
                    port = server.add_secure_port(tls.address(), tls.credentials())
                except RuntimeError as exc:
                    raise UnavailableError(f"cannot listen on {tls.address()}: {exc}") from None
                self.tls_ports.append(port)
            await server.start()
            undo.push_async_callback(self._stop_grpc, server)
            for listener in self.options.unix:
                secure_unix_socket(listener)
                log.info("SDS listening on %s (mode %o)", listener.path, listener.mode)
            self._undo = undo.pop_all()
            self._server = server

    async def _stop_grpc(self, server: grpc.aio.Server) -> None:
        await self.service.end_streams(self._grace or 0.0)
        await server.stop(self._grace)

    async def _start_gates(
        self, public: list[UnixListener], cap: int, undo: contextlib.AsyncExitStack
    ) -> list[UnixListener]:
        """Put an admitting gate on each public socket; returns the private ones to bind."""
        private_dir = Path(tempfile.mkdtemp(prefix="scm-sds-"))
        undo.callback(shutil.rmtree, private_dir, ignore_errors=True)
        private = []
        for index, listener in enumerate(public):
            backend = UnixListener(private_dir / f"sds-{index}.sock")
            refused = refusal_recorder(self.metrics.rejected, self.refusal_log)
            gate = PeerGate(backend.path, self.options.admission, cap, refused)
            await open_gate(gate, listener.path, undo)
            self.gates.append(gate)
            private.append(backend)
        return private

    async def stop(self, grace: float | None = 1.0) -> None:
        if self._server is None or self._undo is None:
            return
        self._server = None
        self._grace = grace
        undo, self._undo = self._undo, None
        await undo.aclose()
