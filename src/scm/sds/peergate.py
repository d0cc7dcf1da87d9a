"""Admit connections to a Unix socket by the peer's uid (SO_PEERCRED) and by count.

gRPC accepts its own connections and does not reveal the peer's credentials, so when an
allow-list or a per-uid limit is configured the public socket belongs to this gate
instead: it reads the connecting process's uid from the kernel, checks it against the
:class:`~scm.sds.admission.AdmissionLimits` before any gRPC work, and relays an admitted
connection, bytes unchanged, to the real server on a private socket. A refused peer gets
a gRPC status spoken by :mod:`scm.sds.refusal` on its own socket (no relay, no second
server), and at most ``max_refusals_in_flight`` of those at once: past that, a refused
connection is simply closed, so a flood costs one descriptor per connection for an
instant.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Callable
from pathlib import Path

from scm.sds.admission import AdmissionLimits, ConnectionCounts, refusal_status
from scm.sds.refusal import refuse_connection

log = logging.getLogger(__name__)

_UCRED = struct.Struct("3i")  # pid, uid, gid


def peer_uid(connection: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket connection."""
    raw = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    _, uid, _ = _UCRED.unpack(raw)
    return int(uid)


class PeerGate:
    """Relays admitted connections on a public socket to ``backend``; refuses the rest.

    ``on_refused(uid, reason)`` is called for every refusal (to count and log it).
    """

    def __init__(
        self,
        backend: Path,
        limits: AdmissionLimits,
        cap: int,
        on_refused: Callable[[int, str], None],
    ) -> None:
        self.backend = backend
        self.limits = limits
        self.counts = ConnectionCounts(limits, cap)
        self.on_refused = on_refused
        self.refusing = 0
        self._server: asyncio.AbstractServer | None = None

    async def start(self, public: Path) -> None:
        self._server = await asyncio.start_unix_server(self._accepted, path=str(public))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._admit(reader, writer)
        except asyncio.CancelledError:
            # The server is shutting down: this connection ends with it. Returning
            # (rather than re-raising) keeps asyncio's stream callback from logging a
            # traceback per open connection.
            writer.close()

    async def _admit(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            uid = peer_uid(writer.get_extra_info("socket"))
        except OSError:
            writer.close()
            return
        reason = self.counts.refusal(uid)
        if reason is not None:
            self.on_refused(uid, reason)
            await self._refuse(reader, writer, reason)
            return
        self.counts.opened(uid)
        try:
            await self._relay(reader, writer)
        finally:
            self.counts.closed(uid)

    async def _refuse(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, reason: str
    ) -> None:
        if self.refusing >= self.limits.max_refusals_in_flight:
            writer.close()  # a flood: no status for this one, only the count
            return
        self.refusing += 1
        try:
            code, message = refusal_status(reason)
            await refuse_connection(reader, writer, code, message, self.limits.refusal_timeout_s)
        finally:
            self.refusing -= 1

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_unix_connection(str(self.backend))
        except OSError as exc:
            log.warning("cannot reach the SDS server's private socket: %s", exc.strerror)
            writer.close()
            return
        await asyncio.gather(
            pipe(reader, upstream_writer), pipe(upstream_reader, writer), return_exceptions=True
        )


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy bytes from ``reader`` to ``writer`` until EOF, then close ``writer``."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            writer.close()
