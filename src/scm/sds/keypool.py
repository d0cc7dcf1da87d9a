"""A few token keys made ahead of time, so a first request does not wait for the token.

SoftHSM2 spends most of a cold issuance writing the new key pair to disk. The pool keeps
``size`` keys ready, refilled in the background after each one is taken. A key is taken
at most once (it leaves the pool before it is used), and a pool key is accounted for
like any other: listed as in progress until a record holds it, deleted on shutdown if
unused, swept after a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class KeyPool:
    """Ready key labels; ``make`` creates one key (blocking) and returns its label."""

    def __init__(self, size: int, make: Callable[[], str]) -> None:
        self.size = size
        self._make = make
        self._ready: list[str] = []
        self._lock = threading.Lock()  # take() runs in worker threads
        self._filling: asyncio.Task[None] | None = None
        self.failures = 0

    def take(self) -> str | None:
        """A ready key, removed from the pool; None when the pool is empty."""
        with self._lock:
            return self._ready.pop(0) if self._ready else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._ready)

    def refill_soon(self) -> None:
        """Start filling the pool on the running loop unless that is under way."""
        if self._filling is None or self._filling.done():
            self._filling = asyncio.get_running_loop().create_task(self.fill(), name="key-pool")

    async def fill(self) -> None:
        """Make keys until the pool is full; a failure stops this round (issuance still works)."""
        while len(self) < self.size:
            try:
                label = await asyncio.to_thread(self._make)
            except Exception as exc:
                self.failures += 1
                log.warning("could not pre-generate a key for the pool: %s", exc)
                return
            with self._lock:
                self._ready.append(label)

    async def close(self) -> list[str]:
        """Stop filling; the labels of keys never taken (the caller deletes them)."""
        self.size = 0  # the fill in progress ends after its current key, which is kept
        if self._filling is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._filling
        with self._lock:
            unused, self._ready = self._ready, []
        return unused
