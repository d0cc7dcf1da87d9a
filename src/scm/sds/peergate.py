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
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from scm.sds.admission import (
    AdmissionLimits,
    ConnectionCounts,
    RefusalLog,
    RefusalPacer,
    refusal_status,
)
from scm.sds.listeners import owner_only_umask, prepare_socket_path
from scm.sds.refusal import refuse_connection
from scm.sds.relay import relay

log = logging.getLogger(__name__)

_UCRED = struct.Struct("3i")  # pid, uid, gid


def peer_uid(connection: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket connection."""
    raw = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    _, uid, _ = _UCRED.unpack(raw)
    return int(uid)


class PeerGate:
    """Relays admitted connections on a public socket to ``backend``; refuses the rest.

    Accepting is a plain callback on the listening socket, not an asyncio stream server:
    a connection refused past the in-flight limit costs one accept, one getsockopt and
    one close, with no transport or task, so a connection flood cannot buy much of the
    event loop that also serves gRPC. ``on_refused(uid, reason)`` is called for every
    refusal (to count and log it).
    """

    ACCEPTS_PER_WAKEUP = 128  # then let the loop run other work (gRPC) before more
    BACKLOG = 4096

    def __init__(
        self,
        backend: Path | None,
        limits: AdmissionLimits,
        cap: int,
        on_refused: Callable[[int, str], None],
        clock: Callable[[], float] = time.monotonic,
        hand_off: Callable[[socket.socket, int], None] | None = None,
    ) -> None:
        self.backend = backend
        # With ``hand_off``, an admitted connection goes there (a worker process relays
        # it and reports its end through ``counts.closed``) instead of relayed here.
        self.hand_off = hand_off
        self.limits = limits
        self.counts = ConnectionCounts(limits, cap)
        self.on_refused = on_refused
        self.refusing = 0
        self.pacer = RefusalPacer(limits.max_refusals_per_second, clock)
        self._listener: socket.socket | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, public: Path) -> None:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(public))
            listener.listen(self.BACKLOG)
            listener.setblocking(False)
        except OSError:
            listener.close()
            raise
        asyncio.get_running_loop().add_reader(listener.fileno(), self._accept_ready)
        self._listener = listener

    async def stop(self) -> None:
        if self._listener is not None:
            asyncio.get_running_loop().remove_reader(self._listener.fileno())
            self._listener.close()
            self._listener = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _accept_ready(self) -> None:
        assert self._listener is not None
        for _ in range(self.ACCEPTS_PER_WAKEUP):
            try:
                connection, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and the like: the reserve is gone
                log.warning("cannot accept an SDS connection: %s", exc.strerror)
                return
            pause = self._admit(connection)
            if pause > 0:
                self._pause(pause)
                return

    def _pause(self, seconds: float) -> None:
        """Stop accepting for ``seconds`` (a flood is being refused)."""
        assert self._listener is not None
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._listener.fileno())
        loop.call_later(seconds, self._resume)

    def _resume(self) -> None:
        if self._listener is not None:  # not stopped meanwhile
            loop = asyncio.get_running_loop()
            loop.add_reader(self._listener.fileno(), self._accept_ready)

    def _admit(self, connection: socket.socket) -> float:
        """Admit or refuse ``connection``; returns how long to stop accepting."""
        try:
            uid = peer_uid(connection)
        except OSError:
            connection.close()
            return 0.0
        reason = self.counts.refusal(uid)
        if reason is None:
            self.counts.opened(uid)
            if self.hand_off is not None:
                self.hand_off(connection, uid)
            else:
                self._spawn(self._relay(connection, uid))
            return 0.0
        self.on_refused(uid, reason)
        if self.refusing >= self.limits.max_refusals_in_flight:
            connection.close()  # a flood: no status for this one, only the count
        else:
            self.refusing += 1
            self._spawn(self._refuse(connection, reason))
        return self.pacer.refused()

    def _spawn(self, work: Coroutine[object, object, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refuse(self, connection: socket.socket, reason: str) -> None:
        try:
            reader, writer = await asyncio.open_unix_connection(sock=connection)
            code, message = refusal_status(reason)
            await refuse_connection(reader, writer, code, message, self.limits.refusal_timeout_s)
        except (OSError, asyncio.CancelledError):
            connection.close()
        finally:
            self.refusing -= 1

    async def _relay(self, connection: socket.socket, uid: int) -> None:
        assert self.backend is not None
        try:
            await relay(connection, self.backend, lambda: self.counts.closed(uid))
        except OSError as exc:  # closed and counted already by relay()
            log.warning("cannot reach the SDS server's private socket: %s", exc.strerror)
        except asyncio.CancelledError:  # the server shutting down: the connection ends with it
            pass


async def open_gate(gate: PeerGate, public: Path, undo: contextlib.AsyncExitStack) -> None:
    """Start ``gate`` on ``public`` (a stale socket replaced; owner-only until the caller
    secures it); ``undo`` stops the gate and removes the socket."""
    prepare_socket_path(public)
    with owner_only_umask():
        await gate.start(public)
    undo.callback(public.unlink, missing_ok=True)
    undo.push_async_callback(gate.stop)


def refusal_recorder(rejected: Any, refusal_log: RefusalLog) -> Callable[[int, str], None]:
    """A gate's ``on_refused``: count the refusal in ``rejected`` (the labelled
    ``scm_sds_rejected`` counter) and log it once per uid and reason per minute."""

    def refused(uid: int, reason: str) -> None:
        rejected.labels(reason).inc()
        refusal_log.refused(f"uid {uid}", reason, refusal_status(reason)[1])

    return refused
