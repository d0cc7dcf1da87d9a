"""Running a long-lived kube service until SIGTERM or SIGINT asks it to stop."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable


def run_until_signalled(service: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``service(stop)`` in a new event loop; SIGTERM or SIGINT sets ``stop``."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await service(stop)

    asyncio.run(main())
