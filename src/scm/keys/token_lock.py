"""The one lock every call into PKCS#11 takes.

PKCS#11 modules are not reliably thread-safe (SoftHSM2 crashes under concurrent signing
through python-pkcs11), so every call into any module in this process is made while
holding one process-wide lock: never two calls at once. The call runs on the calling
thread; async callers await it on a thread (``run_async``) so that neither the token
nor a wait for the lock blocks the event loop.

Calls used to be handed to one dedicated worker thread instead. Waking that thread and
waking the caller again cost 30-40 us on a busy machine, as long as a SoftHSM2 P-256
signature; taking an uncontended lock costs well under a microsecond.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class Pkcs11Lock:
    """Serialises calls into PKCS#11; re-entrant, so a locked call may make others."""

    def __init__(self) -> None:
        self._lock = threading.RLock()

    def run(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn`` on this thread once no other PKCS#11 call is running."""
        with self._lock:
            return fn(*args, **kwargs)

    async def run_async(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn`` run under the lock on a thread, without blocking the event loop."""
        return await asyncio.to_thread(functools.partial(self.run, fn, *args, **kwargs))


@functools.cache
def pkcs11_lock() -> Pkcs11Lock:
    """The process-wide PKCS#11 lock."""
    return Pkcs11Lock()
