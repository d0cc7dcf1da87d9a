"""``mutating(state_dir)``: the state directory's lock, re-entrant within one process.

:func:`scm.statelock.state_lock` is one ``flock`` per call, and a second ``flock`` on a new
descriptor blocks even in the process that holds the first. A command such as ``ca init``
holds the lock around the whole operation and calls keystore methods that take it again
for their own check-and-create; this wrapper lets the inner calls join the outer hold.
Threads of one process take turns; the file lock is held while any of them is inside.
Every change to the state directory takes this, never the plain ``state_lock``, so code
of one process never waits for itself.
Always take it *before* the PKCS#11 lock, never while holding it, so the two cannot
deadlock.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from scm.errors import ConfigError
from scm.files import storage_error
from scm.statelock import DEFAULT_TIMEOUT, LockBusyError, state_lock


@dataclass
class _Hold:
    turn: threading.RLock = field(default_factory=threading.RLock)
    depth: int = 0
    release: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)


_holds: dict[Path, _Hold] = {}
_holds_lock = threading.Lock()


@contextlib.contextmanager
def mutating(state_dir: Path, timeout: float = DEFAULT_TIMEOUT) -> Iterator[None]:
    """Hold ``state_dir``'s cross-process lock; nested calls in this process join it."""
    key = state_dir.absolute()
    with _holds_lock:
        hold = _holds.setdefault(key, _Hold())
    if not hold.turn.acquire(timeout=timeout):
        raise LockBusyError(f"another thread of this process holds the state directory {key}")
    try:
        if hold.depth == 0:
            _make_directory(state_dir)
            hold.release.enter_context(state_lock(state_dir, timeout))
        hold.depth += 1
        try:
            yield
        finally:
            hold.depth -= 1
            if hold.depth == 0:
                hold.release.close()
    finally:
        hold.turn.release()


def _make_directory(state_dir: Path) -> None:
    """A change is about to be written there: create the state directory if it is new."""
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(exc, state_dir) or ConfigError(
            f"cannot create the state directory {state_dir}: {exc.strerror}"
        ) from None
