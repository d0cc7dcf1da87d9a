"""The one thread that talks to PKCS#11.

PKCS#11 modules are not reliably thread-safe (SoftHSM2 crashes under concurrent signing
through python-pkcs11), so every call into any module in this process is made on a single
worker thread. Callers on other threads block on the result; async callers await it.

The hand-off is a SimpleQueue and a per-call lock rather than an Executor and Future:
a signature in SoftHSM2 takes tens of microseconds, and the Future machinery alone
cost about as much.
"""

from __future__ import annotations

import asyncio
import functools
import queue
import threading
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class _Call(Generic[R]):
    """One call waiting for the worker: its function, then its outcome."""

    __slots__ = ("args", "error", "fn", "kwargs", "notify", "result")

    def __init__(
        self, fn: Callable[..., R], args: Any, kwargs: Any, notify: Callable[[], None]
    ) -> None:
        self.fn, self.args, self.kwargs, self.notify = fn, args, kwargs, notify
        self.result: R | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.fn(*self.args, **self.kwargs)
        except BaseException as exc:  # handed to the caller, never lost
            self.error = exc
        self.notify()

    def outcome(self) -> R:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


class Pkcs11Worker:
    """A single daemon thread running calls in order; calls from itself run inline."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[_Call[Any]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="pkcs11", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            self._calls.get().run()

    def on_worker(self) -> bool:
        """True when called from the worker thread itself."""
        return threading.current_thread() is self._thread

    def run(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn`` on the worker thread and return its result (or raise its error)."""
        if self.on_worker():
            return fn(*args, **kwargs)
        done = threading.Lock()
        done.acquire()
        call = _Call(fn, args, kwargs, done.release)
        self._calls.put(call)
        done.acquire()
        return call.outcome()

    async def run_async(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn`` run on the worker thread without blocking the event loop."""
        loop = asyncio.get_running_loop()
        finished = loop.create_future()

        def notify() -> None:
            loop.call_soon_threadsafe(_resolve, finished)

        call = _Call(fn, args, kwargs, notify)
        self._calls.put(call)
        await finished
        return call.outcome()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@functools.cache
def pkcs11_worker() -> Pkcs11Worker:
    """The process-wide PKCS#11 worker."""
    return Pkcs11Worker()
