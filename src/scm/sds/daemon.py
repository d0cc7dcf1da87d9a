"""Run an SDS server (and its HTTP monitor) until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass
from pathlib import Path

from scm.errors import ConfigError
from scm.sds.monitor import start_monitor
from scm.sds.render import SecretRenderer
from scm.sds.server import SdsServer, ServerOptions
from scm.sds.store import SecretStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SdsSettings:
    """The ``[sds]`` settings table (``SCM_SDS_*``); command-line options override it."""

    socket: Path | None = None  # default: <state_dir>/sds.sock
    gateway_socket: Path | None = None
    socket_group: str | None = None
    allowed_uids: tuple[int, ...] = ()
    http: str | None = None
    max_streams: int = 10_000
    max_message_bytes: int = 256 * 1024
    provider_config: Path | None = None
    pin_source: str = "secret"
    user_pin_file: Path | None = None
    so_pin_file: Path | None = None
    sgx_library: str = "/usr/local/lib/libp11sgx.so"
    token_label: str = "scm"


def parse_host_port(text: str, option: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigError(f"{option} {text!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)


async def serve_until_stopped(
    store: SecretStore,
    renderer: SecretRenderer,
    options: ServerOptions,
    http: tuple[str, int] | None,
) -> None:
    """Serve until a stop signal; everything started here is stopped here."""
    server = SdsServer(store, renderer, options)
    await server.start()
    runner = await start_monitor(server, *http) if http else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    names = ", ".join(s.name for s in store) or "nothing yet"
    log.info("SDS serving %s on %s", names, ", ".join(str(u.path) for u in options.unix))
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        if runner is not None:
            await runner.cleanup()
        await server.stop()
