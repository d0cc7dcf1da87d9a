"""Only let allowed uids use a Unix socket, checked with SO_PEERCRED.

gRPC accepts its own connections and does not reveal the peer's credentials, so when an
allow-list is configured the public socket belongs to this gate instead: it reads the
connecting process's uid from the kernel and relays the connection, bytes unchanged, to
the real server on a private socket. A peer that is not allowed is relayed to a second,
tiny gRPC server that answers every call with PERMISSION_DENIED, so the client gets a
gRPC status with a reason rather than a dropped connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import grpc

log = logging.getLogger(__name__)

_UCRED = struct.Struct("3i")  # pid, uid, gid
REFUSAL = "this process's uid is not allowed to use the SDS socket"


def peer_uid(connection: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket connection."""
    raw = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    _, uid, _ = _UCRED.unpack(raw)
    return int(uid)


class PeerGate:
    """Relays connections on ``public`` to ``backend`` for allowed uids, else to ``refusal``."""

    def __init__(
        self,
        backend: Path,
        refusal: Path,
        allowed_uids: Collection[int],
        on_refused: Callable[[int], None],
    ) -> None:
        self.backend = backend
        self.refusal = refusal
        self.allowed_uids = frozenset(allowed_uids)
        self.on_refused = on_refused
        self._server: asyncio.AbstractServer | None = None

    async def start(self, public: Path) -> None:
        self._server = await asyncio.start_unix_server(self._relay, path=str(public))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        uid = peer_uid(writer.get_extra_info("socket"))
        target = self.backend
        if uid not in self.allowed_uids:
            log.warning("refused SDS connection from uid %d (not in the allow-list)", uid)
            self.on_refused(uid)
            target = self.refusal
        try:
            upstream_reader, upstream_writer = await asyncio.open_unix_connection(str(target))
        except OSError:
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


class RefusingHandler(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Answers every RPC with PERMISSION_DENIED."""

    def service(self, call_details: Any) -> Any:
        if call_details.method.endswith("/FetchSecrets"):
            return grpc.unary_unary_rpc_method_handler(self._unary)
        return grpc.stream_stream_rpc_method_handler(self._stream)

    async def _unary(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, REFUSAL)
        return b""

    async def _stream(self, requests: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, REFUSAL)
