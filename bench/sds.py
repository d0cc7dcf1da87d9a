"""SDS at scale: many Envoys on one node-level server, a rotation pushed to all of them.

Client layout, as real sidecars have it: one HTTP/2 connection per simulated Envoy, with
one ``default`` and one ``ROOTCA`` stream on it, every response ACKed; the connections
are spread over several client processes. The same clients are run, in the same run,
against scm's server and against a bare grpc.aio server that pushes responses of the
same size (no protocol rules, no store, no rendering), so the figures have a peer.

Prints, per server: streams that failed to open or failed later (never waits forever:
every wait has a deadline and what did not finish is counted as failed), the time to
open everything, the time from a rotation until every ``default`` stream ACKed it,
server memory per connection and server CPU per pushed Secret. With
``SCM_BENCH_SDS_FLOOD=1`` scm's server is measured once more with a never-reading
client and a connection flood from a disallowed uid started once the Envoys are
connected, running while the rotations are pushed. Figures only.

With ``SCM_BENCH_SDS_WORKERS=N`` scm serves from N worker processes (its parent gates
the socket and passes connections to them) and the bare peer runs as N processes too,
each on a socket of its own with the clients' connections spread evenly over them (no
gate, no relay: what sharding by socket path would cost). Memory and CPU are summed over
all server processes. The clients run on the same machine and share its cores.

Environment: SCM_BENCH_SDS_CONNECTIONS (default 1000), SCM_BENCH_SDS_CLIENTS (4),
SCM_BENCH_SDS_WORKERS (1), SCM_BENCH_SDS_PEER=0 (skip the bare server),
SCM_BENCH_SDS_FLOOD=1 (add the hostile run; "only": just the gated server quiet and
under attack).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import multiprocessing
import os
import resource
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import grpc
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.secret.v3 import sds_pb2_grpc
from google.protobuf import any_pb2
from tests.certs import TestCA
from tests.integration.sds.client import request

from scm.sds import DEFAULT, ROOTCA, SdsServer, SecretRenderer, SecretStore, ServerOptions
from scm.sds.admission import AdmissionLimits
from scm.sds.gcpolicy import settle_heap
from scm.sds.listeners import UnixListener
from scm.sds.render import SECRET_TYPE_URL
from scm.sds.service import Limits
from scm.sds.workers import WorkerPool

CONNECTIONS = int(os.environ.get("SCM_BENCH_SDS_CONNECTIONS", "1000"))
CLIENT_PROCESSES = int(os.environ.get("SCM_BENCH_SDS_CLIENTS", "4"))
FLOOD_MODE = os.environ.get("SCM_BENCH_SDS_FLOOD", "")  # "1": add the hostile run; "only"
FLOOD = FLOOD_MODE in ("1", "only")
PEER = os.environ.get("SCM_BENCH_SDS_PEER", "1") == "1"  # 0: skip the bare grpc.aio run
WORKERS = int(os.environ.get("SCM_BENCH_SDS_WORKERS", "1"))
OPEN_TIMEOUT_S = 120.0
ROTATION_TIMEOUT_S = 60.0
ROTATIONS = 3
TICKS = os.sysconf("SC_CLK_TCK")
ERRORS: collections.Counter[str] = collections.Counter()  # a client process's failures


def rss_bytes(pids: list[int] | None = None) -> int:
    """Resident memory of ``pids`` (default: this process), summed."""
    total = 0
    for pid in pids or ["self"]:
        with open(f"/proc/{pid}/statm") as statm:
            total += int(statm.read().split()[1]) * resource.getpagesize()
    return total


def cpu_seconds(pids: list[int] | None = None) -> float:
    """User and system CPU time of ``pids`` (default: this process), summed."""
    total = 0.0
    for pid in pids or ["self"]:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
        total += (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime
    return total


def big_limits() -> Limits:
    return Limits(max_streams=max(20_000, 2 * CONNECTIONS + 100))


# --- the servers -----------------------------------------------------------------------


class Scm:
    """scm's SDS server with a store holding ROOTCA and default."""

    def __init__(self, socket_path: Path, gated: bool) -> None:
        self.ca = TestCA()
        self.store = SecretStore()
        self.store.put(ROOTCA, self.ca.bundle())
        self.store.put(DEFAULT, self.ca.credential())
        admission = AdmissionLimits(allowed_uids=frozenset({os.geteuid()})) if gated else None
        options = ServerOptions(
            unix=(UnixListener(socket_path),),
            limits=big_limits(),
            admission=admission or AdmissionLimits(),
            workers=WORKERS,
        )
        self.server: SdsServer | WorkerPool
        if WORKERS > 1:
            self.server = WorkerPool(self.store, SecretRenderer(), options)
        else:
            self.server = SdsServer(self.store, SecretRenderer(), options)

    async def start(self) -> None:
        await self.server.start()

    def pids(self) -> list[int]:
        return self.server.pids() if isinstance(self.server, WorkerPool) else [os.getpid()]

    async def acks(self) -> float:
        await self.server.refresh(with_streams=False)  # the workers' counts (a round trip)
        value = self.server.metrics_registry.get_sample_value("scm_sds_acks_total", {"api": "sotw"})
        return value or 0.0

    def rotate(self) -> None:
        self.store.put(DEFAULT, self.ca.credential())

    def secret_bytes(self) -> int:
        stored = self.store.get(DEFAULT)
        assert stored is not None
        service = SdsServer(self.store, SecretRenderer(), ServerOptions()).service
        return len(service._pack(stored).SerializeToString())

    async def stop(self) -> None:
        await self.server.stop(2.0)  # streams end normally first (no cancelled handlers)


class Bare:
    """A bare grpc.aio server: answers and pushes pre-made responses of the same size."""

    def __init__(self, socket_path: Path, secret_bytes: int) -> None:
        self.socket_path = socket_path
        self.payload = b"x" * secret_bytes
        self.version = 1
        self.changed = asyncio.Event()
        self.ack_count = 0.0
        self.server = grpc.aio.server(
            options=[
                ("grpc.server.max_pending_requests", 4 * CONNECTIONS + 1000),
                ("grpc.server.max_pending_requests_hard_limit", 8 * CONNECTIONS + 2000),
            ]
        )
        handler = grpc.method_handlers_generic_handler(
            "envoy.service.secret.v3.SecretDiscoveryService",
            {
                "StreamSecrets": grpc.stream_stream_rpc_method_handler(
                    self.stream,
                    discovery_pb2.DiscoveryRequest.FromString,
                    lambda m: m.SerializeToString(),
                )
            },
        )
        self.server.add_generic_rpc_handlers((handler,))
        self.server.add_insecure_port(f"unix:{socket_path}")

    def response(self, nonce: int) -> Any:
        packed = any_pb2.Any(type_url=SECRET_TYPE_URL, value=self.payload)
        return discovery_pb2.DiscoveryResponse(
            version_info=str(self.version), resources=[packed], nonce=f"{nonce:x}"
        )

    async def stream(self, requests: Any, context: Any) -> AsyncIterator[Any]:
        first = await _next(requests)
        if first is None:
            return
        nonce = 1
        yield self.response(nonce)
        reader = asyncio.create_task(self._count_acks(requests))
        try:
            if DEFAULT not in first.resource_names:
                await reader  # ROOTCA never changes here
                return
            while not reader.done():
                await self.changed.wait()
                nonce += 1
                yield self.response(nonce)
        finally:
            reader.cancel()

    async def _count_acks(self, requests: Any) -> None:
        while await _next(requests) is not None:
            self.ack_count += 1

    async def start(self) -> None:
        await self.server.start()

    def pids(self) -> list[int]:
        return [os.getpid()]

    async def acks(self) -> float:
        return self.ack_count

    def rotate(self) -> None:
        self.version += 1
        self.changed.set()
        self.changed = asyncio.Event()

    async def stop(self) -> None:
        await self.server.stop(0)


async def _next(requests: Any) -> Any:
    """The next request, or None at the end of the stream (or when it failed)."""
    try:
        return await requests.__anext__()
    except (StopAsyncIteration, grpc.aio.AioRpcError, asyncio.InvalidStateError):
        return None


def serve(kind: str, socket_path: str, secret_bytes: int, commands: Connection) -> None:
    asyncio.run(_serve(kind, Path(socket_path), secret_bytes, commands))


async def _serve(kind: str, socket_path: Path, secret_bytes: int, commands: Connection) -> None:
    server: Scm | Bare
    if kind == "bare":
        server = Bare(socket_path, secret_bytes)
    else:
        server = Scm(socket_path, gated=kind == "scm-gated")
    await server.start()
    settle_heap()  # as scm sds serve does; the bare peer gets the same, to stay comparable
    loop = asyncio.get_running_loop()
    commands.send(rss_bytes(server.pids()))
    while True:
        command = await loop.run_in_executor(None, commands.recv)
        if command == "rss":
            commands.send(rss_bytes(server.pids()))
        elif command == "size":
            commands.send(server.secret_bytes() if isinstance(server, Scm) else secret_bytes)
        elif isinstance(command, tuple) and command[0] == "rotate":
            commands.send(await _rotation(server, command[1]))
        else:
            await server.stop()
            commands.send("stopped")
            return


async def _rotation(server: Scm | Bare, expected: int) -> tuple[float | None, int, float]:
    """Rotate; (seconds until ``expected`` more ACKs or None, ACKs seen, CPU seconds)."""
    pids = server.pids()
    before, cpu = await server.acks(), cpu_seconds(pids)
    started = time.perf_counter()
    server.rotate()
    deadline = started + ROTATION_TIMEOUT_S
    poll = 0.002 if len(pids) == 1 else 0.02  # each poll asks every worker
    while (acks := await server.acks()) < before + expected and time.perf_counter() < deadline:
        await asyncio.sleep(poll)
    elapsed = time.perf_counter() - started
    acked = int(acks - before)
    return (elapsed if acked >= expected else None), acked, cpu_seconds(pids) - cpu


# --- the clients -----------------------------------------------------------------------


async def hold_stream(stub: Any, name: str, opened: asyncio.Future[bool]) -> bool:
    """Subscribe to ``name`` and ACK every response, like Envoy; False if it failed."""
    try:
        call = stub.StreamSecrets()
        await call.write(request([name]))
        while True:
            response = await call.read()
            if response is grpc.aio.EOF:
                return False
            await call.write(request([name], response.nonce, response.version_info))
            if not opened.done():
                opened.set_result(True)
    except grpc.aio.AioRpcError as exc:
        ERRORS[f"{exc.code().name}: {exc.details()}"[:240]] += 1
        return False
    except asyncio.InvalidStateError:
        return False
    finally:
        if not opened.done():
            opened.set_result(False)


def hold(paths: list[str], first: int, connections: int, report: Connection) -> None:
    asyncio.run(_hold(paths, first, connections, report))


async def _hold(paths: list[str], first: int, connections: int, report: Connection) -> None:
    """Connections ``first`` onwards; connection g goes to ``paths[g % len(paths)]``."""
    loop = asyncio.get_running_loop()
    channels = [
        grpc.aio.insecure_channel(
            f"unix:{paths[g % len(paths)]}", options=[("grpc.use_local_subchannel_pool", 1)]
        )
        for g in range(first, first + connections)
    ]
    opened: list[asyncio.Future[bool]] = []
    tasks = []
    for channel in channels:
        stub = sds_pb2_grpc.SecretDiscoveryServiceStub(channel)
        for name in (DEFAULT, ROOTCA):
            future: asyncio.Future[bool] = loop.create_future()
            opened.append(future)
            tasks.append(asyncio.create_task(hold_stream(stub, name, future)))
    done, pending = await asyncio.wait(opened, timeout=OPEN_TIMEOUT_S)
    failed_to_open = len(pending) + sum(1 for f in done if not f.result())
    report.send((failed_to_open, dict(ERRORS)))
    await loop.run_in_executor(None, report.recv)  # "count": how many failed since
    report.send((sum(1 for t in tasks if t.done() and not t.result()) - failed_to_open, {}))
    for task in tasks:
        task.cancel()


# --- hostile peers (SCM_BENCH_SDS_FLOOD=1) ----------------------------------------------


def never_read(socket_path: str) -> None:
    """A raw HTTP/2 client that never opens its receive window and keeps sending."""
    from tests.integration.sds.rawh2 import RawGrpcClient, grpc_frame

    message: Any = request([ROOTCA])
    message.node.user_agent_name = "x" * 200_000
    payload = grpc_frame(message.SerializeToString())
    with contextlib.suppress(OSError, ConnectionError):
        client = RawGrpcClient(Path(socket_path), read_window=0)
        stream = client.open("StreamSecrets")
        while True:
            client.send(stream, payload, time.monotonic() + 1)


def connection_flood(socket_path: str) -> None:
    """Idle connections from uid 65534 (not allowed), reopened as the server drops them."""
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
    held: list[socket.socket] = []
    while True:
        with contextlib.suppress(OSError):
            connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            connection.connect(socket_path)
            held.append(connection)
        if len(held) > 5000:
            for old in held[:1000]:
                old.close()
            del held[:1000]


# --- one measurement -------------------------------------------------------------------


class Servers:
    """The server processes of one measurement: scm's (its workers are its children) or
    the bare peer's shards; commands go to all, answers are added up."""

    def __init__(self, kind: str, socket_path: str, secret_bytes: int) -> None:
        spawn = multiprocessing.get_context("spawn")
        shards = WORKERS if kind == "bare" else 1
        self.paths = [socket_path] if shards == 1 else [f"{socket_path}.{k}" for k in range(shards)]
        # connection g goes to shard g % shards (see _hold)
        self.expected = [len(range(k, CONNECTIONS, shards)) for k in range(shards)]
        self.processes: list[Any] = []
        self.controls: list[Connection] = []
        for path in self.paths:
            control, server_end = spawn.Pipe()
            process = spawn.Process(target=serve, args=(kind, path, secret_bytes, server_end))
            process.start()
            self.processes.append(process)
            self.controls.append(control)

    def rss(self, first: bool = False) -> int:
        if not first:
            for control in self.controls:
                control.send("rss")
        return sum(int(control.recv()) for control in self.controls)

    def rotate(self) -> tuple[float | None, int, float]:
        for control, expected in zip(self.controls, self.expected, strict=True):
            control.send(("rotate", expected))
        answers = [control.recv() for control in self.controls]
        times = [seconds for seconds, _, _ in answers]
        elapsed = None if None in times else max(t for t in times if t is not None)
        return elapsed, sum(a for _, a, _ in answers), sum(c for _, _, c in answers)

    def stop(self) -> None:
        for control in self.controls:
            with contextlib.suppress(OSError):
                control.send("stop")
        for control, process in zip(self.controls, self.processes, strict=True):
            if control.poll(20):
                control.recv()
            process.join(10)
            if process.is_alive():
                process.kill()


def measure(kind: str, secret_bytes: int, hostile: bool = False) -> dict[str, Any]:
    spawn = multiprocessing.get_context("spawn")
    directory = tempfile.mkdtemp(prefix="scm-bench-sds-")
    os.chmod(directory, 0o755)
    socket_path = str(Path(directory) / "sds.sock")
    servers = Servers(kind, socket_path, secret_bytes)
    helpers: list[Any] = []
    clients: list[tuple[Any, Connection]] = []
    try:
        baseline = servers.rss(first=True)
        started = time.perf_counter()
        first = 0
        for share in _shares(CONNECTIONS, CLIENT_PROCESSES):
            ours, theirs = spawn.Pipe()
            client = spawn.Process(
                target=hold, args=(servers.paths, first, share, theirs), daemon=True
            )
            client.start()
            clients.append((client, ours))
            first += share
        failed_open = 0
        errors: collections.Counter[str] = collections.Counter()
        for (_, ours), share in zip(clients, _shares(CONNECTIONS, CLIENT_PROCESSES), strict=True):
            failed_open += _recv(ours, OPEN_TIMEOUT_S + 60, 2 * share, errors)
        open_seconds = time.perf_counter() - started
        if hostile:  # the Envoys are connected; the attack runs while rotations are pushed
            os.chmod(socket_path, 0o666)
            for target in (never_read, connection_flood):
                helper = spawn.Process(target=target, args=(socket_path,), daemon=True)
                helper.start()
                helpers.append(helper)
            time.sleep(5)
        time.sleep(1.0)  # let the last ACKs land before measuring memory
        held = servers.rss()
        rotations = [servers.rotate() for _ in range(ROTATIONS)]
        failed_later = 0
        for _, ours in clients:
            ours.send("count")
            failed_later += _recv(ours, 30, 0, errors)
        return {
            "kind": kind,
            "failed_open": failed_open,
            "failed_later": failed_later,
            "open_s": open_seconds,
            "rss_per_connection": (held - baseline) / CONNECTIONS,
            "rotations": rotations,
            "errors": errors,
        }
    finally:
        for process in [c for c, _ in clients] + helpers:
            process.terminate()
            process.join(10)
            if process.is_alive():
                process.kill()
        servers.stop()
        shutil.rmtree(directory, ignore_errors=True)


def _recv(pipe: Connection, timeout: float, default: int, errors: collections.Counter[str]) -> int:
    """A count from a client, or ``default`` (all failed) if it does not answer in time."""
    if not pipe.poll(timeout):
        errors["client did not answer in time"] += 1
        return default
    count, seen = pipe.recv()
    errors.update(seen)
    return int(count)


def report(result: dict[str, Any]) -> None:
    name = {"scm": "scm", "scm-gated": "scm (uid gate)", "bare": "bare grpc.aio"}[result["kind"]]
    if WORKERS > 1:
        name += f", {WORKERS} workers" if result["kind"] != "bare" else f", {WORKERS} shards"
    if result.get("hostile"):
        name += ", with a never-reading client and a disallowed-uid flood"
    streams = 2 * CONNECTIONS
    print(f"{name}:")
    print(f"  streams failed: {result['failed_open']} of {streams} to open, "
          f"{result['failed_later']} later")  # fmt: skip
    for error, count in result["errors"].most_common(5):
        print(f"    {count} x {error}")
    print(f"  opening all streams (first response each): {result['open_s']:.2f} s")
    print(f"  server memory per connection (all server processes): "
          f"{result['rss_per_connection'] / 1024:.1f} KiB")  # fmt: skip
    for number, (seconds, acked, cpu) in enumerate(result["rotations"], 1):
        took = f"{seconds * 1000:.0f} ms" if seconds is not None else "did not finish"
        per_push = cpu / acked * 1e6 if acked else float("nan")
        print(f"  rotation {number}: {acked}/{CONNECTIONS} ACKed, {took}; "
              f"server CPU {cpu:.2f} s = {per_push:.0f} us per pushed Secret")  # fmt: skip


def main() -> None:
    print(f"{CONNECTIONS} connections (one default + one ROOTCA stream each) from "
          f"{CLIENT_PROCESSES} client processes; {WORKERS} server process(es) per server; "
          f"clients and servers share the machine's {os.cpu_count()} cores; figures noisy; "
          f"load average before: {os.getloadavg()[0]:.2f}")  # fmt: skip
    if FLOOD_MODE != "only":
        report(measure("scm", 0))
        if PEER:
            report(measure("bare", _secret_size()))
    if FLOOD:  # the gate (allow-list) is what refuses the flood: compare gated with gated
        report(measure("scm-gated", 0))
        hostile = measure("scm-gated", 0, hostile=True)
        hostile["hostile"] = True
        report(hostile)


def _secret_size() -> int:
    """Bytes of scm's rendered ``default`` Secret (what the bare server pushes too)."""

    async def size() -> int:
        with tempfile.TemporaryDirectory(prefix="scm-bench-") as directory:
            scm = Scm(Path(directory) / "s.sock", gated=False)
            return scm.secret_bytes()

    return asyncio.run(size())


def _shares(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


if __name__ == "__main__":
    sys.exit(main())
