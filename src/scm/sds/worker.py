"""One SDS worker process (``python -m scm.sds.worker MESSAGES_FD CONNECTIONS_FD``).

Started by :class:`scm.sds.workers.WorkerPool`, never by hand. A worker runs the gRPC
service on:

- the TCP listeners, bound with ``SO_REUSEPORT`` beside its siblings (the kernel
  spreads new connections over them; the parent holds the port's serving lock);
- a private Unix socket of its own, fed by relaying the Unix connections the parent's
  gate admitted and passed over (``SCM_RIGHTS``).

It issues nothing: a secret it does not hold is asked of the parent (which issues once
for all workers), and the parent pushes every change of a secret a worker holds. The
worker ends when the parent says so or when the parent is gone (its end of the channel
closes), removing its private socket and directory; it ignores SIGINT and SIGTERM, which
a terminal or systemd sends to the whole process group, so the parent stops it in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from scm.errors import ScmError, UnavailableError
from scm.log import FORMAT, setup_logging
from scm.sds.admission import AdmissionLimits
from scm.sds.credentials import SecretValue
from scm.sds.gcpolicy import settle_heap
from scm.sds.listeners import UnixListener
from scm.sds.metricsum import snapshot
from scm.sds.relay import relay
from scm.sds.render import SecretRenderer
from scm.sds.server import SdsServer, ServerOptions
from scm.sds.store import SecretStore, UnknownSecretError
from scm.sds.workerlink import decode_value, receive, send

log = logging.getLogger(__name__)

HANDOFF = struct.Struct("!II")  # which public socket (gate index), peer uid
RELAY_FAILURE_LOG_INTERVAL_S = 60.0
EXPIRY_FAMILY = "scm_sds_certificate_expiry_seconds"  # the parent reports its own store's


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker serves: its index, the server options (TLS listeners and limits)
    and the renderer; ``relayed`` says whether Unix connections will be handed to it, and
    ``private_dir`` where its private gRPC socket goes."""

    index: int
    options: ServerOptions
    renderer: SecretRenderer
    relayed: bool
    # made by the parent, which removes it when this worker has ended, however it ended
    private_dir: Path
    log_level: str = "INFO"


class ParentProvider:
    """A :class:`~scm.sds.store.CredentialProvider` that asks the parent process."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self.store = SecretStore()  # replaced by the store this provider serves
        self._waiting: dict[int, asyncio.Future[None]] = {}
        self._next = 0

    async def provide(self, name: str) -> SecretValue | None:
        self._next += 1
        request = self._next
        answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[request] = answer
        try:
            send(self._writer, ("obtain", request, name))
            await answer
        finally:
            self._waiting.pop(request, None)
        # The answer was put in the store as it arrived; a change pushed after it is
        # newer, so serve what the store holds now.
        current = self.store.get(name)
        return current.value if current is not None else None

    def answered(self, request: int, name: str, value: Any, error: tuple[str, str] | None) -> None:
        answer = self._waiting.get(request)
        if error is None:
            decoded = decode_value(value)
            if decoded is not None:
                self.store.put(name, decoded)
        if answer is None or answer.done():
            return
        if error is None:
            answer.set_result(None)
        elif error[0] == "unknown":
            answer.set_exception(UnknownSecretError(error[1]))
        else:
            answer.set_exception(UnavailableError(error[1]))

    def parent_gone(self) -> None:
        for answer in self._waiting.values():
            if not answer.done():
                answer.set_exception(UnavailableError("the SDS server process has gone"))


class Worker:
    """The running worker: its server, its private socket, the parent channel."""

    def __init__(
        self, spec: WorkerSpec, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.spec = spec
        self.reader = reader
        self.writer = writer
        self.provider = ParentProvider(writer)
        self.store = SecretStore(self.provider)
        self.provider.store = self.store
        self.private_dir = spec.private_dir
        self.backend = UnixListener(self.private_dir / "grpc.sock")
        options = replace(
            spec.options,
            unix=[self.backend] if spec.relayed else [],
            admission=AdmissionLimits(),  # the parent's gate admitted every connection
            reuse_port=True,
            workers=1,
        )
        self.server = SdsServer(self.store, spec.renderer, options)
        self.stopping = asyncio.Event()
        self._connecting: set[asyncio.Task[None]] = set()
        self._relay_failure_logged = -RELAY_FAILURE_LOG_INTERVAL_S

    async def run(self, connections: socket.socket) -> None:
        await self.server.start()
        loop = asyncio.get_running_loop()
        loop.add_reader(connections.fileno(), self._connections_ready, connections)
        send(self.writer, ("ready", os.getpid(), list(self.server.tls_ports)))
        settle_heap()
        listen = asyncio.create_task(self._listen())
        try:
            await self.stopping.wait()
        finally:
            loop.remove_reader(connections.fileno())
            listen.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listen
            await self.server.stop(1.0)

    async def _listen(self) -> None:
        try:
            while (message := await receive(self.reader)) is not None:
                kind = message[0]
                if kind == "secret":
                    self._secret(message[1], message[2])
                elif kind == "answer":
                    self.provider.answered(*message[1:])
                elif kind == "stats":
                    self._stats(message[1], message[2])
                elif kind == "stop":
                    break
        finally:
            self.provider.parent_gone()
            self.stopping.set()

    def _secret(self, name: str, value: Any) -> None:
        decoded = decode_value(value)
        if decoded is None:
            self.store.remove(name)
        else:
            self.store.put(name, decoded)

    def _stats(self, request: int, with_streams: bool) -> None:
        streams = self.server.stream_entries() if with_streams else None
        metrics = snapshot(self.server.metrics.registry, frozenset({EXPIRY_FAMILY}))
        send(self.writer, ("stats", request, metrics, streams))

    def _connections_ready(self, connections: socket.socket) -> None:
        """Relay every connection the parent has passed (non-blocking, until none left)."""
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(connections, HANDOFF.size, 16)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("cannot receive connections from the SDS server: %s", exc.strerror)
                self.stopping.set()
                return
            if not data and not fds:  # the parent closed its end
                self.stopping.set()
                return
            gate, uid = HANDOFF.unpack(data)
            for fd in fds:
                task = asyncio.get_running_loop().create_task(
                    self._relay(socket.socket(fileno=fd), gate, uid)
                )
                self._connecting.add(task)  # the loop holds tasks weakly
                task.add_done_callback(self._connecting.discard)

    async def _relay(self, connection: socket.socket, gate: int, uid: int) -> None:
        """Relay one passed connection; the parent hears when it has ended."""

        def closed() -> None:
            if not self.writer.is_closing():
                send(self.writer, ("closed", gate, uid))

        try:
            await relay(connection, self.backend.path, closed)
        except OSError as exc:  # closed and reported already; say why, once a minute
            now = time.monotonic()
            if now - self._relay_failure_logged >= RELAY_FAILURE_LOG_INTERVAL_S:
                self._relay_failure_logged = now
                log.warning("cannot relay an SDS connection to gRPC: %s", exc.strerror or exc)

    def cleanup(self) -> None:
        shutil.rmtree(self.private_dir, ignore_errors=True)


async def serve(messages_fd: int, connections_fd: int) -> int:
    """Serve as the parent's spec says until told to stop; the exit status."""
    channel = socket.socket(fileno=messages_fd)
    connections = socket.socket(fileno=connections_fd)
    connections.setblocking(False)
    reader, writer = await asyncio.open_unix_connection(sock=channel)
    first = await receive(reader)
    if first is None or first[0] != "spec":
        return 2
    spec: WorkerSpec = first[1]
    setup_logging(spec.log_level)
    for handler in logging.getLogger().handlers:  # say which worker a line comes from
        handler.setFormatter(logging.Formatter(FORMAT.replace(": ", f" (worker {spec.index}): ")))
    worker = Worker(spec, reader, writer)
    try:
        await worker.run(connections)
    except ScmError as exc:  # a listener that cannot start: the parent reports it
        send(writer, ("failed", str(exc)))
        await writer.drain()
        return 1
    finally:
        worker.cleanup()
        writer.close()
    return 0


def main(argv: list[str]) -> int:
    # Ctrl-C and systemd's SIGTERM reach the whole process group: the parent decides
    # when workers stop (it asks them, or its end of the channel closes when it dies).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        return asyncio.run(serve(int(argv[1]), int(argv[2])))
    except (ConnectionError, OSError) as exc:
        print(f"scm sds worker: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
