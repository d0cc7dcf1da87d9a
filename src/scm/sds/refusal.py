"""Refuse a gRPC connection with a status, spoken directly in HTTP/2 by the peer gate.

A refused peer should learn why (a gRPC status and message, not a dropped connection),
but a flood of refused connections must cost the server as little as possible: no gRPC
server, no second socket per connection. So the gate answers on the accepted socket
itself with the least HTTP/2 a gRPC client needs (RFC 9113, gRPC over HTTP/2):

- the server's connection preface: an empty SETTINGS frame;
- an ACK for the client's SETTINGS and PINGs;
- for the first request (HEADERS frame) a "trailers-only" response: one HEADERS frame with
  END_STREAM whose block carries ``:status 200``, ``content-type``, ``grpc-status`` and
  ``grpc-message``, HPACK-encoded as literals without indexing (no table, no Huffman);
- then GOAWAY and close.

Whatever else the peer sends is read and ignored, bounded in frame size and in time.
"""

from __future__ import annotations

import asyncio
import contextlib

import grpc

CLIENT_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_MAX_FRAME = 16_384  # SETTINGS_MAX_FRAME_SIZE's initial value: a peer may not send more
_DATA, _HEADERS, _SETTINGS, _PING, _GOAWAY = 0x0, 0x1, 0x4, 0x6, 0x7
_ACK = 0x1
_END_STREAM, _END_HEADERS = 0x1, 0x4


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One HTTP/2 frame: 24-bit length, type, flags, 31-bit stream id, payload."""
    return (
        len(payload).to_bytes(3, "big")
        + bytes((kind, flags))
        + (stream_id & 0x7FFFFFFF).to_bytes(4, "big")
        + payload
    )


def hpack_integer(value: int, prefix_bits: int) -> bytes:
    """An HPACK integer with an N-bit prefix (RFC 7541, 5.1), flag bits zero."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((value,))
    out = bytearray((limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_literal(name: str, value: str) -> bytes:
    """A header as a literal without indexing, with a new name (RFC 7541, 6.2.2)."""
    raw_name, raw_value = name.encode("ascii"), value.encode("ascii")
    return (
        b"\x00"
        + hpack_integer(len(raw_name), 7)
        + raw_name
        + hpack_integer(len(raw_value), 7)
        + raw_value
    )


def percent_encoded(message: str) -> str:
    """grpc-message encoding: bytes outside printable ASCII, and '%', as %XX."""
    return "".join(
        chr(b) if 0x20 <= b <= 0x7E and b != 0x25 else f"%{b:02X}" for b in message.encode()
    )


def trailers_only(code: grpc.StatusCode, message: str) -> bytes:
    """The header block of a trailers-only gRPC response with ``code`` and ``message``."""
    return b"".join(
        hpack_literal(name, value)
        for name, value in (
            (":status", "200"),
            ("content-type", "application/grpc"),
            ("grpc-status", str(code.value[0])),
            ("grpc-message", percent_encoded(message)),
        )
    )


async def refuse_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    code: grpc.StatusCode,
    message: str,
    timeout: float,
) -> None:
    """Answer the peer's first call with ``code`` and close; give up after ``timeout``."""
    try:
        writer.write(frame(_SETTINGS, 0, 0))
        async with asyncio.timeout(timeout):
            if await reader.readexactly(len(CLIENT_PREFACE)) != CLIENT_PREFACE:
                return
            while True:
                header = await reader.readexactly(9)
                length = int.from_bytes(header[:3], "big")
                kind, flags = header[3], header[4]
                stream_id = int.from_bytes(header[5:], "big") & 0x7FFFFFFF
                if length > _MAX_FRAME:
                    return
                payload = await reader.readexactly(length)
                if kind == _SETTINGS and not flags & _ACK:
                    writer.write(frame(_SETTINGS, _ACK, 0))
                    await writer.drain()  # a peer that never reads meets the timeout
                elif kind == _PING and not flags & _ACK:
                    writer.write(frame(_PING, _ACK, 0, payload))
                    await writer.drain()
                elif kind == _HEADERS and stream_id:
                    block = trailers_only(code, message)
                    writer.write(frame(_HEADERS, _END_STREAM | _END_HEADERS, stream_id, block))
                    goaway = stream_id.to_bytes(4, "big") + (0).to_bytes(4, "big")
                    writer.write(frame(_GOAWAY, 0, 0, goaway))
                    await writer.drain()
                    return
    except (TimeoutError, asyncio.IncompleteReadError, OSError):
        return
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            writer.close()
