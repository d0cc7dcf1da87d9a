"""Run an SDS server (its HTTP monitor and certificate renewal) until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from scm.sds.issuer import CertificateIssuer
from scm.sds.monitor import start_monitor
from scm.sds.render import SecretRenderer
from scm.sds.renewal import Backoff, Renewer
from scm.sds.rootwatch import follow_trust_bundle
from scm.sds.server import SdsServer, ServerOptions
from scm.sds.store import SecretStore
from scm.sds.workers import WorkerPool

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass(frozen=True)
class SdsSettings:
    """The ``[sds]`` settings table (``SCM_SDS_*``); command-line options override it.

    The workload identity issued as ``default`` is
    ``spiffe://<trust_domain>/ns/<namespace>/sa/<service_account>`` plus ``dns_names``;
    ``trust_domain`` defaults to ``[ca] trust_domain``.
    """

    socket: Path | None = None  # default: <state_dir>/sds.sock
    gateway_socket: Path | None = None
    socket_group: str | None = None
    allowed_uids: tuple[int, ...] = ()
    http: str | None = None
    max_streams: int = 20_000
    max_message_bytes: int = 256 * 1024
    max_connections: int = 0  # 0: as many as the descriptor limit allows
    max_connections_per_uid: int = 0  # 0: no per-uid limit (a limit puts the gate in front)
    max_streams_per_connection: int = 100
    descriptor_reserve: int = 256
    workers: int = 1  # processes serving SDS (scm.sds.workers); 1: the server alone
    provider_config: Path | None = None
    pin_source: str = "secret"
    user_pin_file: Path | None = None
    so_pin_file: Path | None = None
    sgx_library: str = "/usr/local/lib/libp11sgx.so"
    token_label: str = "scm"
    # software works with every Envoy, including the stock one `scm up` bundles; hsm needs a
    # contrib Envoy with the SGX private key provider, so it is asked for explicitly.
    key_mode: str = "software"
    cert_ttl: str = "24h"
    grace_ratio: float = 0.5
    key_pool: int = 2  # token keys made ahead of time (hsm key mode), for fast cold issuance
    trust_domain: str | None = None
    namespace: str = "default"
    service_account: str = "default"
    dns_names: tuple[str, ...] = ()
    attest: bool = False  # put TEE evidence in every CSR (also when [ca] requires it)
    tee_root: Path = Path("/")  # where the TEE's quote interfaces are (configfs-tsm, Gramine)


@dataclass
class Running:
    """A started server (or worker pool), with the port its monitor listens on (None
    without one)."""

    server: SdsServer | WorkerPool
    monitor_port: int | None


@contextlib.asynccontextmanager
async def running(
    store: SecretStore,
    renderer: SecretRenderer,
    options: ServerOptions,
    http: tuple[str, int] | None,
    issuer: CertificateIssuer | None = None,
    backoff: Backoff | None = None,
) -> AsyncIterator[Running]:
    """The server, its monitor and renewal, all stopped (sockets removed) on exit."""
    server: SdsServer | WorkerPool
    if options.workers > 1:
        server = WorkerPool(store, renderer, options)
    else:
        server = SdsServer(store, renderer, options)
    health = issuer.health if issuer else None
    if health is not None:
        health.register(server.metrics.registry)
    await server.start()
    runner: web.AppRunner | None = None
    renewal: asyncio.Task[None] | None = None
    roots: asyncio.Task[None] | None = None
    try:
        port = None
        if http:
            runner = await start_monitor(server, *http, issuance=health)
            port = _bound_port(runner)
        if issuer is not None:
            renewal = asyncio.create_task(Renewer(store, issuer, backoff).run(), name="renewal")
            roots = asyncio.create_task(follow_trust_bundle(store, issuer.ca), name="rootca")
            await issuer.start_pool()
        yield Running(server, port)
    finally:
        # Each step runs whatever the previous one raised: the socket is always removed.
        try:
            for task in (renewal, roots):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if issuer is not None:
                await issuer.aclose()
            if runner is not None:
                await runner.cleanup()
        finally:
            await server.stop()


@contextlib.contextmanager
def on_stop_signal(callback: Callable[[], object]) -> Iterator[None]:
    """Call ``callback`` on SIGINT or SIGTERM while inside the block."""
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, callback)
    try:
        yield
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)


async def wait_for_stop_signal() -> None:
    """Return on the first SIGINT or SIGTERM."""
    stop = asyncio.Event()
    with on_stop_signal(stop.set):
        await stop.wait()


def _bound_port(runner: web.AppRunner) -> int:
    address = runner.addresses[0]
    return int(address[1])
