"""Run the console on its own listener until told to stop."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from scm.console.access import Access
from scm.console.app import CONSOLE_PREFIX, console_app
from scm.console.sources import ConsoleSources
from scm.errors import UnavailableError

log = logging.getLogger(__name__)


def console_url(host: str, port: int, tls: bool) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{shown}:{port}{CONSOLE_PREFIX}"


async def serve_console(
    sources: ConsoleSources,
    host: str,
    port: int,
    access: Access,
    started: Callable[[str], None],
    stop: Callable[[], Awaitable[None]],
) -> None:
    """Serve until ``stop()`` returns; ``started`` hears the URL once the port is bound."""
    runner = web.AppRunner(console_app(sources, access.token), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=access.ssl_context)
        try:
            await site.start()
        except OSError as exc:
            raise UnavailableError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        bound = int(runner.addresses[0][1])
        started(console_url(host, bound, access.ssl_context is not None))
        await stop()
    finally:
        await runner.cleanup()
