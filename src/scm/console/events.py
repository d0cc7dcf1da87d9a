"""Server-Sent Events: a live fragment re-rendered on an interval and sent when it changes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from aiohttp import web

from scm.console.html import Html

Render = Callable[[], Awaitable[Html]]
Sleep = Callable[[float], Awaitable[None]]

# Browsers reconnect after this many milliseconds when the stream drops.
RETRY_MS = 3000


def sse_message(event: str, html: Html) -> bytes:
    """One SSE message: the fragment as JSON on a single ``data:`` line."""
    data = json.dumps({"html": str(html)})
    return f"event: {event}\ndata: {data}\n\n".encode()


async def stream_fragment(
    request: web.Request,
    event: str,
    render: Render,
    interval: float,
    closing: asyncio.Event,
    sleep: Sleep = asyncio.sleep,
) -> web.StreamResponse:
    """Send ``render()`` now and again each time it differs, until the client goes away
    or ``closing`` is set (the server stops: the stream then ends cleanly).

    A keep-alive comment goes out on every quiet interval so a dead client is noticed.
    """
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    await response.write(f"retry: {RETRY_MS}\n\n".encode())
    last: Html | None = None
    try:
        while not closing.is_set():
            fragment = await render()
            if fragment != last:
                await response.write(sse_message(event, fragment))
                last = fragment
            else:
                await response.write(b": idle\n\n")
            await _first_of(sleep(interval), closing.wait())
        await response.write_eof()
    except ConnectionResetError:  # the browser closed the page
        pass
    return response


async def _first_of(*waits: Awaitable[object]) -> None:
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
