"""The console's identities page next to the JSON /status it renders, as streams grow.

One aiohttp server on loopback serves both from the same status document (S secrets, N
connected Envoys): ``/status`` as JSON (what operators read today) and
``/console/identities`` as HTML, both while nothing changes (the page re-uses its last
render) and with a change before every request (a full render each time, the worst case).
A client fetches each REQUESTS times in turn and prints median and 95th percentile
latency, page size and failures. Figures only.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from typing import Any

import aiohttp
from aiohttp import web
from tests.unit.console.helpers import status_document

from scm.console import ConsoleSources, add_console_routes
from scm.console.sources import in_process_status

REQUESTS = int(os.environ.get("SCM_BENCH_CONSOLE_REQUESTS", "50"))
STREAM_COUNTS = (1, 100, 1000)
TIMEOUT = aiohttp.ClientTimeout(total=30)


def document(streams: int) -> dict[str, Any]:
    base = status_document()
    stream = base["streams"][0]
    return status_document(
        streams=[dict(stream, id=i, node=f"sidecar~10.0.0.{i % 250}~w{i}.default~cluster.local")
                 for i in range(streams)]
    )  # fmt: skip


async def measure(session: aiohttp.ClientSession, url: str) -> tuple[list[float], int, int]:
    times, failures, size = [], 0, 0
    for _ in range(REQUESTS):
        start = time.perf_counter()
        try:
            async with session.get(url) as response:
                body = await response.read()
                if response.status != 200:
                    failures += 1
                    continue
        except (aiohttp.ClientError, TimeoutError):
            failures += 1
            continue
        times.append(time.perf_counter() - start)
        size = len(body)
    return times, failures, size


def summary(name: str, times: list[float], failures: int, size: int) -> str:
    if not times:
        return f"  {name:<22} all {failures} requests failed"
    p95 = statistics.quantiles(times, n=20)[-1] if len(times) > 1 else times[0]
    return (
        f"  {name:<22} median {statistics.median(times) * 1000:7.2f} ms  "
        f"p95 {p95 * 1000:7.2f} ms  {size / 1024:8.1f} KiB  failures {failures}"
    )


async def run(streams: int) -> None:
    doc = document(streams)

    async def status(_: web.Request) -> web.Response:
        return web.json_response(doc)

    changes = iter(range(1 << 62))

    def changing() -> dict[str, Any]:
        first = dict(doc["streams"][0], nacks=next(changes))
        return dict(doc, streams=[first, *doc["streams"][1:]])

    app = web.Application()
    app.router.add_get("/status", status)
    add_console_routes(app, ConsoleSources(status=in_process_status(lambda: doc)))
    add_console_routes(app, ConsoleSources(status=in_process_status(changing)), "/changing/")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            print(f"{streams} connected Envoys, {REQUESTS} sequential requests each:")
            for name, path in (("/status (JSON)", "/status"),
                               ("identities, unchanged", "/console/identities"),
                               ("identities, changing", "/changing/identities")):  # fmt: skip
                print(summary(name, *await measure(session, f"http://127.0.0.1:{port}{path}")))
    finally:
        await runner.cleanup()


def main() -> None:
    for streams in STREAM_COUNTS:
        asyncio.run(run(streams))


if __name__ == "__main__":
    main()
