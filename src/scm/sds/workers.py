"""Serve SDS from several worker processes (``[sds] workers``), one store for all.

One process pushes a rotation to a few thousand streams a second; a node-level server
with 10,000 Envoys needs more cores than that. The parent process keeps everything that
must happen once: the store, issuance and renewal (so an identity is issued once, never
by two workers at the same time), the trust bundle, the monitor, the serving locks of
every address and the admission gate of every Unix socket. The workers
(:mod:`scm.sds.worker`) only speak SDS:

- TCP: every worker binds the port with ``SO_REUSEPORT`` and the kernel spreads new
  connections over them. scm turns the option off otherwise, so that two servers never
  share a port by accident; here the parent holds the port's serving lock (and a bound
  placeholder socket), so only its own workers can join.
- Unix sockets: Linux does not spread a Unix socket's connections over several
  listeners and grpcio cannot adopt a listening or accepted descriptor, so the parent
  accepts, admits (uid, per-uid and total limits, counted here across workers) and
  passes each connection (``SCM_RIGHTS``) to the worker with the fewest; that worker
  relays it into its own private gRPC socket.

Secrets reach the workers over their channel: a worker asks for a name it lacks, the
parent answers from its store (issuing if needed) and pushes every later change of that
name to all workers. ``/status`` and ``/metrics`` add up the workers' figures. A worker
that dies is restarted (after a pause that grows while it keeps dying); the connections
it held are gone and their Envoys reconnect. Stopping ends every worker (killed if it does
not end in time), and leaves no socket, lock or process behind.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import math
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from scm.errors import ScmError, UnavailableError
from scm.sds.admission import (
    DESCRIPTORS_PER_RELAYED_CONNECTION,
    RefusalLog,
    connection_cap,
    descriptor_budget,
)
from scm.sds.listeners import (
    TlsListener,
    port_lock_dir,
    secure_unix_socket,
)
from scm.sds.metrics import SdsMetrics
from scm.sds.metricsum import Family, snapshot, summed_registry
from scm.sds.peergate import PeerGate, open_gate, refusal_recorder
from scm.sds.render import SecretRenderer
from scm.sds.server import ServerOptions
from scm.sds.store import SecretStore, UnknownSecretError
from scm.sds.worker import HANDOFF, WorkerSpec
from scm.sds.workerlink import encode_value, receive, send
from scm.statelock import ServingLock

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0  # a loaded node imports grpc slowly
STOP_TIMEOUT_S = 10.0
STATS_TIMEOUT_S = 5.0
RESTART_DELAYS_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
STEADY_AFTER_S = 60.0  # a worker that ran this long starts its restart delays over


@dataclass
class _Worker:
    """One worker process as the parent sees it."""

    index: int
    process: asyncio.subprocess.Process | None = None
    writer: asyncio.StreamWriter | None = None
    connections: socket.socket | None = None  # the parent's end of the SCM_RIGHTS pair
    private_dir: Path | None = None  # where its private gRPC socket is
    ready: bool = False
    started_at: float = 0.0
    pid: int = 0
    held: collections.Counter[tuple[int, int]] = field(default_factory=collections.Counter)
    pending: collections.deque[tuple[socket.socket, int, int]] = field(
        default_factory=collections.deque
    )
    metrics: list[Family] = field(default_factory=list)
    streams: list[dict[str, Any]] = field(default_factory=list)
    answers: dict[int, asyncio.Future[None]] = field(default_factory=dict)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    @property
    def open_connections(self) -> int:
        return sum(self.held.values()) + len(self.pending)

    @property
    def channel(self) -> asyncio.StreamWriter | None:
        """Where to send the worker messages; None once its channel is closed or closing."""
        writer = self.writer
        return writer if writer is not None and not writer.is_closing() else None


class WorkerPool:
    """Serves ``store`` from ``options.workers`` processes until :meth:`stop`.

    Offers what :class:`~scm.sds.daemon.running` and the monitor use of an
    :class:`~scm.sds.server.SdsServer`: ``start``, ``stop``, ``ready``, ``store``,
    ``metrics``, ``metrics_registry``, ``refresh``, ``stream_entries``, ``tls_ports``.
    """

    def __init__(
        self,
        store: SecretStore,
        renderer: SecretRenderer,
        options: ServerOptions,
        refusal_log: RefusalLog | None = None,
    ) -> None:
        self.store = store
        self.renderer = renderer
        self.options = options
        self.metrics = SdsMetrics(store)  # this process's own counts: gate refusals
        self.restarts = Counter(
            "scm_sds_worker_restarts",
            "SDS worker processes restarted after they died.",
            registry=self.metrics.registry,
        )
        self.metrics_registry: CollectorRegistry = summed_registry(self._metric_sources)
        self.refusal_log = refusal_log or RefusalLog()
        self.workers = [_Worker(index) for index in range(options.workers)]
        self.gates: list[PeerGate] = []
        self.tls_ports: list[int] = []
        self._worker_options = self._options_for_workers()
        self._undo: contextlib.AsyncExitStack | None = None
        self._stopping = False
        self._watched: set[str] = set()
        self._next_request = 0
        self._supervisors: set[asyncio.Task[None]] = set()

    # --- the server surface -------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Started, and serving through at least one worker (others may be restarting)."""
        return self._undo is not None and any(w.ready for w in self.workers)

    def pids(self) -> list[int]:
        """This process and every running worker (for measuring them together)."""
        return [os.getpid(), *(w.pid for w in self.workers if w.ready)]

    async def start(self) -> None:
        """Lock every address, start the workers, then open the Unix sockets to peers;
        or raise having undone everything already started."""
        async with contextlib.AsyncExitStack() as undo:
            for listener in self.options.unix:
                lock = ServingLock.for_socket(listener.path)
                lock.acquire()
                undo.callback(lock.release)
            for tls in self.options.tls:
                port = self._hold_port(tls, undo)
                self.tls_ports.append(port)
            self._worker_options = replace(
                self._worker_options,
                tls=[
                    replace(t, port=p)
                    for t, p in zip(self.options.tls, self.tls_ports, strict=True)
                ],
            )
            undo.push_async_callback(self._stop_workers)
            started = await asyncio.gather(
                *(self._spawn(worker) for worker in self.workers), return_exceptions=True
            )
            for outcome in started:
                if isinstance(outcome, BaseException):
                    raise outcome
            for worker in self.workers:
                self._supervise(worker)
            await self._start_gates(undo)
            for listener in self.options.unix:
                secure_unix_socket(listener)
                log.info(
                    "SDS listening on %s (mode %o) with %d workers",
                    listener.path,
                    listener.mode,
                    len(self.workers),
                )
            self._undo = undo.pop_all()

    async def stop(self, grace: float | None = 1.0) -> None:
        if self._undo is None:
            return
        undo, self._undo = self._undo, None
        await undo.aclose()

    def stream_entries(self) -> list[dict[str, Any]]:
        return [
            {**entry, "worker": worker.index} for worker in self.workers for entry in worker.streams
        ]

    async def refresh(self, with_streams: bool) -> None:
        """Ask every worker for its figures (a worker that does not answer in time keeps
        its previous ones)."""
        waits = [self._ask_stats(w, with_streams) for w in self.workers if w.ready]
        if waits:
            await asyncio.wait([asyncio.ensure_future(w) for w in waits], timeout=STATS_TIMEOUT_S)

    def _metric_sources(self) -> Iterator[list[Family]]:
        yield snapshot(self.metrics.registry)
        for worker in self.workers:
            yield worker.metrics

    # --- addresses --------------------------------------------------------------------

    def _hold_port(self, tls: TlsListener, undo: contextlib.AsyncExitStack) -> int:
        """Bind a placeholder on ``tls``'s address (port 0: the kernel picks one) with
        ``SO_REUSEPORT`` so the workers can join it, and take the port's serving lock."""
        family = socket.AF_INET6 if ":" in tls.host else socket.AF_INET
        placeholder = socket.socket(family, socket.SOCK_STREAM)
        undo.callback(placeholder.close)
        placeholder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            placeholder.bind((tls.host, tls.port))
        except OSError as exc:
            raise UnavailableError(f"cannot listen on {tls.address()}: {exc.strerror}") from None
        port = int(placeholder.getsockname()[1])
        lock = ServingLock.for_port(port_lock_dir(), tls.host, port)
        lock.acquire()
        undo.callback(lock.release)
        return port

    def _options_for_workers(self) -> ServerOptions:
        """Each worker's share of the limits that gRPC enforces per process."""
        count = len(self.workers)
        limits = self.options.limits
        return replace(
            self.options,
            unix=[],
            limits=replace(limits, max_streams=math.ceil(limits.max_streams / count)),
            admission=replace(
                self.options.admission,
                max_connections=math.ceil(self.options.admission.max_connections / count),
            ),
        )

    async def _start_gates(self, undo: contextlib.AsyncExitStack) -> None:
        if not self.options.unix:
            return
        # A connection costs a worker three descriptors, and each worker has a
        # descriptor limit of its own.
        budget = descriptor_budget(self.options.descriptor_reserve) * len(self.workers)
        cap = connection_cap(
            self.options.admission.max_connections, budget, DESCRIPTORS_PER_RELAYED_CONNECTION
        )
        for index, listener in enumerate(self.options.unix):
            gate = PeerGate(
                None,
                self.options.admission,
                max(cap, 1),
                refusal_recorder(self.metrics.rejected, self.refusal_log),
                hand_off=functools.partial(self._hand_off, index),
            )
            await open_gate(gate, listener.path, undo)
            self.gates.append(gate)

    # --- handing connections to workers ---------------------------------------------------

    def _hand_off(self, gate: int, connection: socket.socket, uid: int) -> None:
        """Pass an admitted connection to the worker holding the fewest."""
        ready = [w for w in self.workers if w.ready and w.connections is not None]
        if not ready:
            connection.close()  # every worker is restarting: the Envoy retries
            self.gates[gate].counts.closed(uid)
            return
        worker = min(ready, key=lambda w: w.open_connections)
        worker.pending.append((connection, gate, uid))
        if len(worker.pending) == 1:
            self._flush(worker)

    def _flush(self, worker: _Worker) -> None:
        """Send ``worker`` its queued connections; wait for room when its queue is full."""
        assert worker.connections is not None
        loop = asyncio.get_running_loop()
        while worker.pending:
            connection, gate, uid = worker.pending[0]
            try:
                socket.send_fds(
                    worker.connections, [HANDOFF.pack(gate, uid)], [connection.fileno()]
                )
            except (BlockingIOError, InterruptedError):
                loop.add_writer(worker.connections.fileno(), self._writable, worker)
                return
            except OSError:  # the worker has died: its supervisor cleans up
                return
            worker.pending.popleft()
            worker.held[(gate, uid)] += 1
            connection.close()  # the worker holds its own descriptor now

    def _writable(self, worker: _Worker) -> None:
        if worker.connections is not None:
            asyncio.get_running_loop().remove_writer(worker.connections.fileno())
            self._flush(worker)

    def _release(self, worker: _Worker) -> None:
        """Forget everything ``worker`` held: it has exited (its connections with it)."""
        for connection, gate, uid in worker.pending:
            connection.close()
            self.gates[gate].counts.closed(uid)
        worker.pending.clear()
        for (gate, uid), count in worker.held.items():
            for _ in range(count):
                self.gates[gate].counts.closed(uid)
        worker.held.clear()

    # --- worker processes ---------------------------------------------------------------

    async def _spawn(self, worker: _Worker) -> None:
        """Start ``worker``'s process and wait until it serves (or raise why not)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        handoff_ours, handoff_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "scm.sds.worker",
                str(theirs.fileno()), str(handoff_theirs.fileno()),
                pass_fds=(theirs.fileno(), handoff_theirs.fileno()),
                stdin=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
        except BaseException:
            for end in (ours, handoff_ours):
                end.close()
            raise
        finally:
            theirs.close()
            handoff_theirs.close()
        handoff_ours.setblocking(False)
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        worker.process, worker.writer, worker.connections = process, writer, handoff_ours
        worker.started_at = time.monotonic()
        worker.private_dir = Path(tempfile.mkdtemp(prefix=f"scm-sds-worker{worker.index}-"))
        spec = WorkerSpec(
            worker.index,
            self._worker_options,
            self.renderer,
            relayed=bool(self.options.unix),
            private_dir=worker.private_dir,
            log_level=logging.getLevelName(logging.getLogger().getEffectiveLevel()),
        )
        send(writer, ("spec", spec))
        try:
            first = await asyncio.wait_for(receive(reader), START_TIMEOUT_S)
        except TimeoutError:
            first = None
        if first is None or first[0] != "ready":
            await self._end(worker)
            why = first[1] if first is not None and first[0] == "failed" else "no answer"
            raise UnavailableError(f"SDS worker {worker.index} did not start: {why}")
        worker.pid = int(first[1])
        worker.ready = True
        self._track(worker, self._listen(worker, reader))
        log.debug("SDS worker %d serving (pid %d)", worker.index, worker.pid)

    def _track(self, worker: _Worker, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        worker.tasks.add(task)
        task.add_done_callback(worker.tasks.discard)

    async def _listen(self, worker: _Worker, reader: asyncio.StreamReader) -> None:
        """Handle what ``worker`` says until its channel closes."""
        while (message := await receive(reader)) is not None:
            kind = message[0]
            if kind == "closed":
                _, gate, uid = message
                if worker.held[(gate, uid)] > 0:
                    worker.held[(gate, uid)] -= 1
                    self.gates[gate].counts.closed(uid)
            elif kind == "obtain":
                self._track(worker, self._answer(worker, message[1], message[2]))
            elif kind == "stats":
                _, request, metrics, streams = message
                worker.metrics = metrics
                if streams is not None:
                    worker.streams = streams
                answer = worker.answers.pop(request, None)
                if answer is not None and not answer.done():
                    answer.set_result(None)

    async def _answer(self, worker: _Worker, request: int, name: str) -> None:
        """Answer a worker's request for ``name`` from the store (which issues once)."""
        error: tuple[str, str] | None = None
        try:
            await self.store.obtain(name)
        except UnknownSecretError as exc:
            error = ("unknown", str(exc))
        except ScmError as exc:
            error = ("unavailable", str(exc))
        except Exception as exc:  # a bug: the worker's stream ends with UNAVAILABLE
            log.exception("obtaining %r for a worker failed", name)
            error = ("unavailable", f"internal error ({type(exc).__name__})")
        channel = worker.channel
        if channel is None:
            return
        if error is None:
            self._watch(name)
            # the newest value: later changes follow in order
            send(channel, ("answer", request, name, self._encoded(name), None))
        else:
            send(channel, ("answer", request, name, None, error))

    def _watch(self, name: str) -> None:
        if name not in self._watched:
            self._watched.add(name)
            self.store.watch(name, self)

    def secret_changed(self, name: str) -> None:
        """The store changed ``name``: every worker hears it (those lacking it ignore it
        until asked: they store it, and serve it when a stream asks)."""
        value = self._encoded(name)
        for worker in self.workers:
            channel = worker.channel
            if worker.ready and channel is not None:
                send(channel, ("secret", name, value))

    def _encoded(self, name: str) -> tuple[Any, ...] | None:
        """The store's current value of ``name`` as the worker channel carries it."""
        current = self.store.get(name)
        return encode_value(current.value if current is not None else None)

    async def _ask_stats(self, worker: _Worker, with_streams: bool) -> None:
        channel = worker.channel
        if channel is None:
            return
        self._next_request += 1
        answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        worker.answers[self._next_request] = answer
        send(channel, ("stats", self._next_request, with_streams))
        await answer

    def _supervise(self, worker: _Worker) -> None:
        task = asyncio.get_running_loop().create_task(self._keep_running(worker))
        self._supervisors.add(task)
        task.add_done_callback(self._supervisors.discard)

    async def _keep_running(self, worker: _Worker) -> None:
        """Restart ``worker`` whenever it exits, until the pool stops."""
        failures = 0
        while not self._stopping:
            assert worker.process is not None
            status = await worker.process.wait()
            if self._stopping:
                return
            ran = time.monotonic() - worker.started_at
            failures = 0 if ran >= STEADY_AFTER_S else failures + 1
            await self._end(worker)
            delay = RESTART_DELAYS_S[min(failures, len(RESTART_DELAYS_S) - 1)]
            log.warning(
                "SDS worker %d (pid %d) exited with status %s; restarting it in %.1f s",
                worker.index,
                worker.pid,
                status,
                delay,
            )
            self.restarts.inc()
            await asyncio.sleep(delay)
            if self._stopping:
                return
            try:
                await self._spawn(worker)
            except (ScmError, OSError) as exc:
                log.warning("restarting SDS worker %d failed: %s", worker.index, exc)

    async def _end(self, worker: _Worker) -> None:
        """Stop ``worker``'s process (asked, then killed) and release what it held."""
        worker.ready = False
        process = worker.process
        if worker.writer is not None:
            if not worker.writer.is_closing():
                send(worker.writer, ("stop",))
                with contextlib.suppress(ConnectionError):
                    await worker.writer.drain()
            worker.writer.close()
        if process is not None and process.returncode is None:
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                log.warning("SDS worker %d did not stop in time; killing it", worker.index)
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGKILL)
                await process.wait()
        if worker.connections is not None:
            asyncio.get_running_loop().remove_writer(worker.connections.fileno())
            worker.connections.close()
            worker.connections = None
        for task in list(worker.tasks):
            task.cancel()
        if worker.tasks:
            await asyncio.gather(*worker.tasks, return_exceptions=True)
        for answer in worker.answers.values():
            answer.cancel()
        worker.answers.clear()
        worker.writer = None
        if worker.private_dir is not None:  # a worker killed outright cannot remove it
            shutil.rmtree(worker.private_dir, ignore_errors=True)
            worker.private_dir = None
        if self.gates:
            self._release(worker)

    async def _stop_workers(self) -> None:
        self._stopping = True
        for task in list(self._supervisors):
            task.cancel()
        if self._supervisors:
            await asyncio.gather(*self._supervisors, return_exceptions=True)
        await asyncio.gather(*(self._end(w) for w in self.workers if w.process is not None))
        for name in self._watched:
            self.store.unwatch(name, self)
        self._watched.clear()
