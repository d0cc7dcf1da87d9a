"""The one thread that talks to PKCS#11.

PKCS#11 modules are not reliably thread-safe (SoftHSM2 crashes under concurrent signing
through python-pkcs11), so every call into any module in this process is made on a single
worker thread. Callers on other threads block on the result; async callers await it.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class Pkcs11Worker:
    """A single-thread executor that runs calls made from its own thread inline."""

    def __init__(self) -> None:
        self._thread_id: int | None = None
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="pkcs11", initializer=self._remember_thread
        )

    def _remember_thread(self) -> None:
        self._thread_id = threading.get_ident()

    def on_worker(self) -> bool:
        """True when called from the worker thread itself."""
        return threading.get_ident() == self._thread_id

    def run(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn`` on the worker thread and return its result (or raise its error)."""
        if self.on_worker():
            return fn(*args, **kwargs)
        return self._executor.submit(fn, *args, **kwargs).result()

    async def run_async(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn`` run on the worker thread without blocking the event loop."""
        return await asyncio.wrap_future(self._executor.submit(fn, *args, **kwargs))


@functools.cache
def pkcs11_worker() -> Pkcs11Worker:
    """The process-wide PKCS#11 worker."""
    return Pkcs11Worker()
