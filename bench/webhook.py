"""Admission webhook throughput and latency over TLS on loopback, 200 requests in flight.

The webhook runs as `scm kube webhook` in its own process; this process is the client
(kube-apiserver's part) keeping 200 reviews of an SGX pod in flight over 200 TLS
connections. Prints reviews/s and latency percentiles, and the cost of one review
without HTTP for comparison.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from tests.tls import make_tls

from scm.kube.webhook.review import review

CONCURRENCY = 200
REQUESTS = 12_000
WARMUP = 1_000
REVIEW = Path(__file__).parents[1] / "tests" / "fixtures" / "admission" / "pod-aesmd-sidecar.json"


async def wait_ready(url: str, context: ssl.SSLContext) -> None:
    deadline = time.monotonic() + 20
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


async def load(url: str, context: ssl.SSLContext, body: bytes) -> tuple[list[float], float]:
    """Warm up (TLS handshakes included), then time REQUESTS reviews on the same connections,
    as kube-apiserver reuses its connections to a webhook."""
    connector = aiohttp.TCPConnector(limit=CONCURRENCY, ssl=context)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector) as session:

        async def run(count: int) -> list[float]:
            latencies: list[float] = []
            queue = iter(range(count))

            async def worker() -> None:
                for _ in queue:
                    started = time.perf_counter()
                    async with session.post(f"{url}/mutate", data=body, headers=headers) as reply:
                        await reply.read()
                        assert reply.status == 200
                    latencies.append(time.perf_counter() - started)

            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
            return latencies

        await run(WARMUP)
        started = time.perf_counter()
        latencies = await run(REQUESTS)
        return latencies, time.perf_counter() - started


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    body = REVIEW.read_bytes()
    started = time.perf_counter()
    for _ in range(2000):
        review(body)
    in_process_us = (time.perf_counter() - started) / 2000 * 1e6
    print(f"one review without HTTP: {in_process_us:.0f} us")

    scm = shutil.which("scm", path=str(Path(sys.executable).parent)) or "scm"
    with tempfile.TemporaryDirectory() as tmp, socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        tls = make_tls(Path(tmp))
        args = ["--tls-cert", str(tls.cert), "--tls-key", str(tls.key), "--port", str(port)]
        server = subprocess.Popen([scm, "kube", "webhook", "--host", "127.0.0.1", *args])
        try:
            url = f"https://127.0.0.1:{port}"
            context = ssl.create_default_context(cafile=tls.ca)
            asyncio.run(wait_ready(url, context))
            latencies, elapsed = asyncio.run(load(url, context, body))
        finally:
            server.terminate()
            server.wait(timeout=10)
    ms = [x * 1000 for x in latencies]
    rate = REQUESTS / elapsed
    print(
        f"{REQUESTS} reviews, {CONCURRENCY} in flight over TLS: {rate:.0f} reviews/s; "
        f"latency p50 {statistics.median(ms):.1f} ms, p90 {percentile(ms, 0.9):.1f} ms, "
        f"p99 {percentile(ms, 0.99):.1f} ms, max {max(ms):.1f} ms"
    )
    print(
        json.dumps(
            {"reviews_per_s": round(REQUESTS / elapsed), "p99_ms": round(percentile(ms, 0.99), 1)}
        )
    )


if __name__ == "__main__":
    main()
