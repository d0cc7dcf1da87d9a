"""Live updates: a message when the identities change, a keep-alive otherwise, an end on stop."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from scm.console import ConsoleSources, console_app
from scm.console.sources import in_process_status
from tests.unit.console.helpers import status_document


class Ticks:
    """A sleep the test releases one interval at a time."""

    def __init__(self) -> None:
        self.released = asyncio.Queue[None]()
        self.waiting = asyncio.Queue[None]()

    async def sleep(self, _: float) -> None:
        self.waiting.put_nowait(None)
        await self.released.get()

    async def tick(self) -> None:
        await asyncio.wait_for(self.waiting.get(), 30)
        self.released.put_nowait(None)


async def next_block(response: Any) -> str:
    """One SSE block (up to the blank line)."""
    lines = []
    while True:
        line = (await asyncio.wait_for(response.content.readline(), 30)).decode()
        if line == "\n":
            return "".join(lines)
        lines.append(line)


def test_a_renewal_is_pushed_and_quiet_intervals_only_keep_alive() -> None:
    document = status_document()

    async def scenario() -> list[str]:
        ticks = Ticks()
        sources = ConsoleSources(
            status=in_process_status(lambda: copy.deepcopy(document)), sleep=ticks.sleep
        )
        async with TestClient(TestServer(console_app(sources))) as client:
            response = await client.get("/console/events/identities")
            blocks = [await next_block(response), await next_block(response)]  # retry, first
            await ticks.tick()
            blocks.append(await next_block(response))  # nothing changed
            document["secrets"][0]["serials"] = ["beef"]  # the certificate was renewed
            await ticks.tick()
            blocks.append(await next_block(response))
            response.close()
            return blocks

    retry, first, quiet, renewed = asyncio.run(scenario())
    assert retry.startswith("retry:")
    assert first.startswith("event: update") and "1a2b" in first
    assert quiet == ": idle\n"
    data = json.loads(renewed.split("data: ", 1)[1])
    assert "beef" in data["html"] and "1a2b" not in data["html"]


def test_stopping_the_server_ends_open_streams() -> None:
    async def scenario() -> bytes:
        sources = ConsoleSources(status=in_process_status(status_document), poll_interval=3600)
        server = TestServer(console_app(sources))
        client = TestClient(server)
        await client.start_server()
        response = await client.get("/console/events/identities")
        await next_block(response)
        await next_block(response)
        await server.runner.shutdown()  # the app's on_shutdown: what AppRunner.cleanup calls
        rest = await asyncio.wait_for(response.content.read(), 30)
        await client.close()
        return rest

    # The stream ended (EOF) although its interval is an hour away.
    assert asyncio.run(scenario()) == b""
