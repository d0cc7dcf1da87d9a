"""What relaying a Unix connection costs an SDS worker (``scm.sds.relay``).

A worker of ``scm sds serve --workers N`` relays every Unix connection the parent passed
to it into its own gRPC socket. Measured here on its own: client processes send a
message of SDS size (2,000 bytes, about a rendered Secret) on each of many connections
and wait for it to come back from an echo server; the relay runs in this process, and
its CPU time is divided by the round trips (one round trip is about what one pushed
Secret and its ACK cost the relay). The same clients talking to the echo server directly
give the clients' own wall time for comparison. Figures only; every wait has a deadline.

Environment: SCM_BENCH_RELAY_CONNECTIONS (200), SCM_BENCH_RELAY_ROUNDS (100).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import shutil
import socket
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

from scm.sds.relay import relay

CONNECTIONS = int(os.environ.get("SCM_BENCH_RELAY_CONNECTIONS", "200"))
ROUNDS = int(os.environ.get("SCM_BENCH_RELAY_ROUNDS", "100"))
MESSAGE = b"x" * 2000
DEADLINE_S = 120.0


def echo(path: str) -> None:
    async def serve() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()

        server = await asyncio.start_unix_server(handle, path, backlog=4096)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


def clients(path: str, report: Connection) -> None:
    async def one() -> bool:
        try:
            reader, writer = await asyncio.open_unix_connection(path)
            for _ in range(ROUNDS):
                writer.write(MESSAGE)
                await writer.drain()
                got = 0
                while got < len(MESSAGE):
                    chunk = await reader.read(65536)
                    if not chunk:
                        return False
                    got += len(chunk)
            writer.close()
            return True
        except OSError:
            return False

    async def run() -> tuple[int, float]:
        started = time.perf_counter()
        results = await asyncio.wait_for(
            asyncio.gather(*(one() for _ in range(CONNECTIONS))), DEADLINE_S
        )
        return results.count(False), time.perf_counter() - started

    try:
        report.send(asyncio.run(run()))
    except TimeoutError:
        report.send((CONNECTIONS, DEADLINE_S))


async def relaying(public: str, backend: str, done: Connection) -> float:
    """Relay every connection to ``public`` until the clients report; CPU seconds used."""
    loop = asyncio.get_running_loop()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(public)
    listener.listen(4096)
    listener.setblocking(False)

    async def accept() -> None:
        while True:
            connection, _ = await loop.sock_accept(listener)
            await relay(connection, Path(backend), lambda: None)

    acceptor = asyncio.create_task(accept())
    cpu = time.process_time()
    deadline = time.monotonic() + DEADLINE_S + 10
    while not done.poll() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    used = time.process_time() - cpu
    acceptor.cancel()
    listener.close()
    return used


def run_clients(path: str, relay_through: str | None) -> tuple[int, float, float | None]:
    spawn = multiprocessing.get_context("spawn")
    ours, theirs = spawn.Pipe()
    client = spawn.Process(target=clients, args=(relay_through or path, theirs), daemon=True)
    cpu: float | None = None
    if relay_through is None:
        client.start()
    else:

        async def measure() -> float:
            task = asyncio.create_task(relaying(relay_through, path, ours))
            await asyncio.sleep(0.2)
            client.start()
            return await task

        cpu = asyncio.run(measure())
    if not ours.poll(DEADLINE_S + 20):
        client.kill()
        return CONNECTIONS, DEADLINE_S, cpu
    failed, seconds = ours.recv()
    client.join(10)
    return failed, seconds, cpu


def main() -> None:
    directory = tempfile.mkdtemp(prefix="scm-bench-relay-")
    backend = os.path.join(directory, "echo.sock")
    spawn = multiprocessing.get_context("spawn")
    server = spawn.Process(target=echo, args=(backend,), daemon=True)
    server.start()
    try:
        for _ in range(100):
            if os.path.exists(backend):
                break
            time.sleep(0.05)
        trips = CONNECTIONS * ROUNDS
        print(f"{CONNECTIONS} connections x {ROUNDS} round trips of {len(MESSAGE)} bytes; "
              f"load average {os.getloadavg()[0]:.2f} (the machine is shared: noisy)")  # fmt: skip
        for label, through in (("direct", None), ("relayed", os.path.join(directory, "p.sock"))):
            failed, seconds, cpu = run_clients(backend, through)
            line = f"  {label}: {failed} failed connections, {seconds:.2f} s"
            if cpu is not None:
                line += f", relay CPU {cpu / trips * 1e6:.1f} us per round trip"
            print(line)
    finally:
        server.kill()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
