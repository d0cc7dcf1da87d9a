"""Copy bytes between an accepted connection and the gRPC server's private socket.

Built on asyncio protocols rather than streams: one relayed connection costs two
transports and two small objects, no task and no stream buffers, and each direction
reads into one buffer shared by every relay of the process (the bytes are copied out
at once). Flow control passes through: when one side cannot take more, the other side
stops being read, so a peer that never reads cannot make the relay hold its data.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path

_READ_BUFFER = bytearray(64 * 1024)  # one per process: filled and emptied synchronously
_VIEW = memoryview(_READ_BUFFER)


class _Half(asyncio.BufferedProtocol):
    """One side of a relay: what it reads is written to ``peer``."""

    def __init__(self, on_closed: Callable[[], None] | None = None) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Half | None = None
        self.on_closed = on_closed
        self.early: list[bytes] = []  # read before the other side was connected

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.peer is not None and self.peer.early:
            transport.writelines(self.peer.early)
            self.peer.early.clear()

    def get_buffer(self, sizehint: int) -> memoryview:
        return _VIEW

    def buffer_updated(self, nbytes: int) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.write(bytes(_VIEW[:nbytes]))
        else:  # the server speaks first (its SETTINGS) before the peer side is connected
            self.early.append(bytes(_VIEW[:nbytes]))

    def eof_received(self) -> bool:
        # HTTP/2 has no use for a half-closed connection (gRPC keeps serving its streams
        # on one): either side's EOF ends the relay, both sides closed once flushed.
        return False

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        peer, self.peer = self.peer, None
        if peer is not None:
            peer.peer = None
            if peer.transport is not None:
                peer.transport.close()
        if self.on_closed is not None:
            on_closed, self.on_closed = self.on_closed, None
            on_closed()


async def relay(connection: socket.socket, backend: Path, on_closed: Callable[[], None]) -> None:
    """Relay ``connection`` to the Unix socket ``backend`` until either side closes.

    Returns once both sides are connected; ``on_closed`` is called exactly once, when
    the relay has ended (also when ``backend`` cannot be reached).
    """
    loop = asyncio.get_running_loop()
    upstream = _Half()
    try:
        await loop.create_unix_connection(lambda: upstream, str(backend))
        downstream = _Half(on_closed)
        downstream.peer, upstream.peer = upstream, downstream
        await loop.connect_accepted_socket(lambda: downstream, sock=connection)
    except BaseException:
        connection.close()
        if upstream.transport is not None:
            upstream.transport.close()
        on_closed()
        raise
