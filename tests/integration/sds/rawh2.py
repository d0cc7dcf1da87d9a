"""A raw HTTP/2 gRPC peer (the ``h2`` package) that behaves the way grpcio never would.

It speaks the real wire protocol (connection preface, SETTINGS, HEADERS, length-prefixed
gRPC messages in DATA frames, flow control) but decides itself when to open its receive
window, so a test can play a client that never reads while it keeps sending, or one that leaves
(RST_STREAM, or the socket closed) while the server's write to it is still pending.
"""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings

SDS_SERVICE = "/envoy.service.secret.v3.SecretDiscoveryService"


def grpc_frame(message: bytes) -> bytes:
    """One gRPC length-prefixed message (uncompressed)."""
    return struct.pack(">BI", 0, len(message)) + message


class RawGrpcClient:
    """One HTTP/2 connection over a Unix socket; opens no receive window unless told to."""

    def __init__(self, path: Path | socket.socket, read_window: int = 0) -> None:
        """Connect to the Unix socket ``path``, or speak on a connected socket given."""
        if isinstance(path, socket.socket):
            self.sock = path
            self.sock.settimeout(10)
        else:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(10)
            self.sock.connect(str(path))
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.conn.initiate_connection()
        self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: read_window})
        self.trailers: dict[int, dict[str, str]] = {}
        self.reset: set[int] = set()
        self.received: dict[int, bytes] = {}
        self._settings_acked = 0
        self._flush()

    def open(self, method: str) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        self.conn.send_headers(
            stream_id,
            [
                (":method", "POST"),
                (":scheme", "http"),
                (":path", f"{SDS_SERVICE}/{method}"),
                (":authority", "localhost"),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
            ],
        )
        self._flush()
        return stream_id

    def send(self, stream_id: int, payload: bytes, deadline: float) -> bool:
        """Send ``payload`` as far as the server's window lets us before ``deadline``.

        Returns whether all of it went out (False: the server stopped granting window).
        """
        while payload:
            window = min(
                self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size
            )
            if window <= 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.pump(min(0.5, remaining))
                continue
            self.conn.send_data(stream_id, payload[:window])
            payload = payload[window:]
            self._flush()
        return True

    def end(self, stream_id: int) -> None:
        self.conn.end_stream(stream_id)
        self._flush()

    def abandon(self, stream_id: int) -> None:
        """Abandon ``stream_id`` with RST_STREAM (CANCEL), as a client that gives up does."""
        self.conn.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
        self._flush()

    def shut_window(self, timeout: float = 20.0) -> None:
        """Shut the receive window of every open stream (SETTINGS_INITIAL_WINDOW_SIZE 0
        moves each window down by what it was opened with) and wait for the server's ACK,
        after which nothing more the server writes can reach us."""
        acked = self._settings_acked
        self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
        self._flush()
        deadline = time.monotonic() + timeout
        while self._settings_acked == acked:
            if time.monotonic() > deadline:
                raise AssertionError(f"the server did not acknowledge SETTINGS in {timeout} s")
            self.pump(0.2)

    def wait_messages(self, stream_id: int, count: int, timeout: float = 20.0) -> None:
        """Read until ``stream_id`` has received ``count`` whole gRPC messages."""
        deadline = time.monotonic() + timeout
        while self.messages(stream_id) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"stream {stream_id}: no message {count} in {timeout} s")
            self.pump(0.2)

    def messages(self, stream_id: int) -> int:
        """How many whole gRPC messages ``stream_id`` has received so far."""
        return len(self.payloads(stream_id))

    def payloads(self, stream_id: int) -> list[bytes]:
        """The whole gRPC messages ``stream_id`` has received so far, without their prefix."""
        data, found = self.received.get(stream_id, b""), []
        while len(data) >= 5:
            (length,) = struct.unpack(">I", data[1:5])
            if len(data) < 5 + length:
                break
            found.append(data[5 : 5 + length])
            data = data[5 + length :]
        return found

    def pump(self, timeout: float) -> bool:
        """Read what the server sent within ``timeout``; False if nothing came."""
        if timeout <= 0:
            return False
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return False
        if not data:
            raise ConnectionError("server closed the connection")
        for event in self.conn.receive_data(data):
            if isinstance(event, h2.events.TrailersReceived):
                self.trailers[event.stream_id] = dict(event.headers)  # type: ignore[arg-type]
            elif isinstance(event, h2.events.ResponseReceived):
                headers = dict(event.headers)  # type: ignore[arg-type]
                if "grpc-status" in headers:  # trailers-only response
                    self.trailers[event.stream_id] = headers
            elif isinstance(event, h2.events.SettingsAcknowledged):
                self._settings_acked += 1
            elif isinstance(event, h2.events.StreamReset):
                self.reset.add(event.stream_id)
            elif isinstance(event, h2.events.DataReceived):
                # Deliberately never acknowledged: the receive window stays shut.
                self.received[event.stream_id] = (
                    self.received.get(event.stream_id, b"") + event.data
                )
        self._flush()
        return True

    def status_of(self, stream_id: int, timeout: float = 20.0) -> dict[str, str]:
        """The trailers that end ``stream_id`` (grpc-status, grpc-message)."""
        deadline = time.monotonic() + timeout
        while stream_id not in self.trailers:
            if time.monotonic() > deadline:
                raise AssertionError(f"no status for stream {stream_id} within {timeout} s")
            self.pump(0.2)
        return self.trailers[stream_id]

    def close(self) -> None:
        self.sock.close()

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)
