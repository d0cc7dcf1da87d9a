"""Admission webhook latency and CPU per review under open-loop load, next to a floor.

Two servers run as processes of their own, over TLS on loopback: `scm kube webhook`, and the
floor, an aiohttp server that reads each body and sends one constant AdmissionReview (what
any Python webhook on this stack costs at least). This process plays kube-apiserver: for
each rate (200, 500, 1,000, 1,500 reviews/s) it sends reviews of an SGX pod at fixed times,
whatever the answers do (open loop: a slow server makes requests pile up, as real clients
would), to each server in turn. Latency is measured from the time a request was due, so
the client's own lateness counts against the server rather than hiding queueing.

Each rate is run in short rounds (SCM_BENCH_WEBHOOK_ROUNDS, default 6, of
SCM_BENCH_WEBHOOK_SECONDS, default 1 s, per server), the two servers taking turns in
alternating order (scm then floor, then floor then scm), so that the load other work puts on
this shared machine falls on both alike; the CPU ratio is printed over all rounds and as the
median of the rounds' ratios.

Printed per rate and server, over all rounds: p50 and p99; failures (errors, non-200, over
the API server's 5 s timeout, and "wrong": answered 200 but not with the expected answer);
requests the client sent more than 10 ms late (the client itself falling behind); and the
server's CPU per review (its process's user + system time over the answered reviews;
meaningless once most requests fail). scm's expected answer is checked once against the
previous, dict-based implementation's (tests/unit/kube/previous_review.py), and every later
answer must be byte for byte the same. Then the latency of small reviews while four reviews
of almost 3 MiB are in flight, and the load average before and after. Figures only; nothing
is asserted.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from aiohttp import web
from tests.tls import make_tls
from tests.unit.kube import previous_review

from scm.kube.webhook.server import MAX_BODY, tls_context

RATES = (200, 500, 1000, 1500)
# Connections per server, opened before measuring and kept, as kube-apiserver keeps its
# connections to a webhook: no TLS handshake is measured, and a slow server makes requests
# queue in the client (counted in their latency) rather than open ever more connections.
CONNECTIONS = 64
SECONDS = float(os.environ.get("SCM_BENCH_WEBHOOK_SECONDS", "1"))
ROUNDS = int(os.environ.get("SCM_BENCH_WEBHOOK_ROUNDS", "6"))
TIMEOUT = 5.0  # timeoutSeconds of the shipped MutatingWebhookConfiguration
FIXTURES = Path(__file__).parents[1] / "tests" / "fixtures" / "admission"
REVIEW = FIXTURES / "pod-aesmd-sidecar.json"
LARGE = FIXTURES / "pod-aesmd-host.json"


@dataclass
class Run:
    """What one server did at one rate."""

    latencies: list[float] = field(default_factory=list)
    failures: int = 0
    wrong: int = 0  # of the failures: answered 200, but not with the expected answer
    late: int = 0
    cpu_seconds: float = 0.0

    def add(self, other: Run) -> None:
        self.latencies += other.latencies
        self.failures += other.failures
        self.wrong += other.wrong
        self.late += other.late
        self.cpu_seconds += other.cpu_seconds

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


def serve_floor(port: int, cert: str, key: str) -> None:
    """The floor: read the body, answer a constant review. Runs in its own process."""
    answer = json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {"uid": "constant", "allowed": True},
        }
    ).encode()

    async def mutate(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=answer, content_type="application/json")

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_post("/mutate", mutate)
    app.router.add_get("/healthz", healthz)
    context = tls_context(Path(cert), Path(key))
    web.run_app(app, host="127.0.0.1", port=port, ssl_context=context, access_log=None, print=None)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def wait_ready(url: str, context: ssl.SSLContext) -> None:
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(f"{url}/healthz", ssl=context) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                if time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.1)


async def post(
    session: aiohttp.ClientSession, url: str, body: bytes, expected: bytes | None = None
) -> str:
    """One review: "ok" if answered 200 (with ``expected``, if given, byte for byte), "wrong"
    if answered 200 with anything else, "failed" otherwise."""
    try:
        async with session.post(
            f"{url}/mutate",
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=aiohttp.ClientTimeout(total=TIMEOUT),
        ) as reply:
            answer = await reply.read()
            if reply.status != 200:
                return "failed"
            return "ok" if expected is None or answer == expected else "wrong"
    except (aiohttp.ClientError, TimeoutError):
        return "failed"


async def expected_answer(session: aiohttp.ClientSession, url: str, body: bytes) -> bytes:
    """scm's answer to ``body``, once checked against the previous implementation's: the
    same outcome and the same patch, operation for operation."""
    async with session.post(f"{url}/mutate", data=body) as reply:
        answer = await reply.read()
    oracle = previous_review.review(body).document["response"]
    response = json.loads(answer)["response"]
    if {k: v for k, v in response.items() if k != "patch"} != {
        k: v for k, v in oracle.items() if k != "patch"
    } or json.loads(base64.b64decode(response["patch"])) != json.loads(
        base64.b64decode(oracle["patch"])
    ):
        raise SystemExit("scm's answer differs from the previous implementation's")
    return answer


async def open_loop(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    rate: float,
    seconds: float,
    expected: bytes | None = None,
) -> Run:
    """Send ``rate`` reviews per second for ``seconds``, each at its due time."""
    run = Run()
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05

    async def one(due: float) -> None:
        if loop.time() - due > 0.010:
            run.late += 1
        outcome = await post(session, url, body, expected)
        if outcome == "ok":
            run.latencies.append(loop.time() - due)
        else:
            run.failures += 1
            run.wrong += outcome == "wrong"

    tasks = []
    total = int(rate * seconds)
    sent = 0
    while sent < total:
        # Every request due by now goes out: one wake-up per millisecond, not per request.
        now = loop.time()
        while sent < total and start + sent / rate <= now:
            tasks.append(asyncio.create_task(one(start + sent / rate)))
            sent += 1
        await asyncio.sleep(0.001)
    # Never wait forever: whatever has no answer well past the API server's timeout failed.
    _, pending = await asyncio.wait(tasks, timeout=TIMEOUT + 5) if tasks else (set(), set())
    for task in pending:
        task.cancel()
    run.failures += len(pending)
    return run


def cpu_per_review(run: Run) -> float:
    """The server's CPU seconds per answered review (NaN when none was answered)."""
    return run.cpu_seconds / len(run.latencies) if run.latencies else float("nan")


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def measure(
    servers: dict[str, tuple[str, psutil.Process]], context: ssl.SSLContext, body: bytes
) -> dict[tuple[int, str], list[Run]]:
    results: dict[tuple[int, str], list[Run]] = {
        (rate, name): [] for rate in RATES for name in servers
    }
    sessions = {
        name: aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONNECTIONS, ssl=context))
        for name in servers
    }
    try:
        expected = {"scm": await expected_answer(sessions["scm"], servers["scm"][0], body)}
        for name, (url, _) in servers.items():  # every connection opened, code paths warm
            for _ in range(3):
                await asyncio.gather(*(post(sessions[name], url, body) for _ in range(CONNECTIONS)))
        for rate in RATES:
            for round_ in range(ROUNDS):
                names = list(servers) if round_ % 2 == 0 else list(reversed(servers))
                for name in names:
                    url, process = servers[name]
                    await asyncio.sleep(0.3)  # let the other server finish what it still had
                    before = cpu_seconds(process)
                    run = await open_loop(
                        sessions[name], url, body, rate, SECONDS, expected.get(name)
                    )
                    run.cpu_seconds = cpu_seconds(process) - before
                    results[(rate, name)].append(run)
    finally:
        for session in sessions.values():
            await session.close()
    return results


def large_body() -> bytes:
    """A review of an SGX pod with as many containers as fit just under 3 MiB."""
    document: dict[str, Any] = json.loads(LARGE.read_text())
    spec = document["request"]["object"]["spec"]
    template = spec["containers"][0]
    per_container = len(json.dumps(template)) + 16
    count = (MAX_BODY - 4096) // per_container
    while True:
        spec["containers"] = [dict(template, name=f"app-{i}") for i in range(count)]
        body = json.dumps(document).encode()
        if len(body) < MAX_BODY:
            return body
        count = count * 97 // 100


async def small_beside_large(url: str, context: ssl.SSLContext, body: bytes) -> tuple[Run, int]:
    """Small reviews at 50/s while four large ones are kept in flight; returns the small
    reviews' run and how many large reviews were answered."""
    big = large_body()
    stop = asyncio.Event()
    answered = 0
    connector = aiohttp.TCPConnector(limit=64, ssl=context)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def keep_large() -> None:
            nonlocal answered
            while not stop.is_set():
                if await post(session, url, big) == "ok":
                    answered += 1

        large = [asyncio.create_task(keep_large()) for _ in range(4)]
        await asyncio.sleep(0.5)
        run = await open_loop(session, url, body, 50, 3.0)
        stop.set()
        await asyncio.wait(large, timeout=TIMEOUT + 5)
    return run, answered


def main() -> None:
    # SIGTERM (a timeout, make) unwinds through the finally below, which stops both servers.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))
    if sys.argv[1:2] == ["--floor"]:
        serve_floor(int(sys.argv[2]), sys.argv[3], sys.argv[4])
        return
    body = REVIEW.read_bytes()
    load_before = os.getloadavg()
    scm = shutil.which("scm", path=str(Path(sys.executable).parent)) or "scm"
    with tempfile.TemporaryDirectory() as tmp:
        tls = make_tls(Path(tmp))
        scm_port, floor_port = free_port(), free_port()
        tls_args = ["--tls-cert", str(tls.cert), "--tls-key", str(tls.key)]
        processes = {
            "scm": subprocess.Popen(
                [scm, "kube", "webhook", "--listen", f"127.0.0.1:{scm_port}", *tls_args]
            ),
            "floor": subprocess.Popen(
                [sys.executable, __file__, "--floor", str(floor_port), str(tls.cert), str(tls.key)]
            ),
        }
        try:
            context = ssl.create_default_context(cafile=tls.ca)
            servers = {
                "scm": (f"https://127.0.0.1:{scm_port}", psutil.Process(processes["scm"].pid)),
                "floor": (
                    f"https://127.0.0.1:{floor_port}",
                    psutil.Process(processes["floor"].pid),
                ),
            }
            for url, _ in servers.values():
                asyncio.run(wait_ready(url, context))
            results = asyncio.run(measure(servers, context, body))
            beside, large_answered = asyncio.run(
                small_beside_large(servers["scm"][0], context, body)
            )
        finally:
            for process in processes.values():
                process.terminate()
                process.wait(timeout=10)

    load_after = os.getloadavg()
    print(
        f"open loop, {ROUNDS} rounds of {SECONDS:g} s per rate and server (alternating), TLS "
        f"on loopback, client and servers on {os.cpu_count()} cores; load average (1 min) "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after"
    )
    print("rate/s  server  p50 ms  p99 ms  failures  wrong  late  CPU ms/review")
    summary: dict[str, Any] = {}
    merged: dict[tuple[int, str], Run] = {}
    for (rate, name), runs in results.items():
        merged[(rate, name)] = run = Run()
        for one in runs:
            run.add(one)
        cpu_ms = cpu_per_review(run) * 1000
        print(
            f"{rate:6d}  {name:6s}  {run.percentile(0.5):6.1f}  {run.percentile(0.99):6.1f}  "
            f"{run.failures:8d}  {run.wrong:5d}  {run.late:4d}  {cpu_ms:13.3f}"
        )
        summary[f"{name}_{rate}"] = {
            "p99_ms": round(run.percentile(0.99), 1),
            "cpu_ms": round(cpu_ms, 3),
            "failures": run.failures,
            "wrong": run.wrong,
        }
    for rate in RATES:
        ratio = cpu_per_review(merged[(rate, "scm")]) / cpu_per_review(merged[(rate, "floor")])
        rounds = [
            cpu_per_review(mine) / cpu_per_review(floor)
            for mine, floor in zip(results[(rate, "scm")], results[(rate, "floor")], strict=True)
        ]
        print(
            f"CPU per review at {rate}/s: scm {ratio:.2f}x the floor, median of rounds "
            f"{statistics.median(rounds):.2f} (rounds: {', '.join(f'{r:.2f}' for r in rounds)})"
        )
        summary[f"cpu_ratio_{rate}"] = round(ratio, 2)
    print(
        f"small reviews at 50/s beside 4 large ones (3 MiB) in flight: "
        f"p50 {beside.percentile(0.5):.1f} ms, p99 {beside.percentile(0.99):.1f} ms, "
        f"failures {beside.failures}; large reviews answered: {large_answered}"
    )
    summary["beside_large_p99_ms"] = round(beside.percentile(0.99), 1)
    summary["load_average"] = [round(load_before[0], 2), round(load_after[0], 2)]
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
