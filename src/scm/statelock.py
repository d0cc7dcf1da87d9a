"""Cross-process locks over scm's state: one per state directory, one per served address.

Check-and-create (a key label, ``ca init``, an SDS record, key retirement) must be atomic
between scm processes that share a state directory, so every mutation holds the state
directory's lock. Reads never take it. A serving process holds the lock of the address it
serves (a socket path, a TCP port) for as long as it serves, so a second server refuses to
start instead of stealing the first one's socket.

Locks are ``fcntl`` locks on a file: the kernel drops them when the holder dies, so a
``kill -9`` never leaves a lock behind. The holder's pid is written into the file so that a
refused process can say who holds it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from scm.errors import ConfigError, ScmError

STATE_LOCK_NAME = ".scm-state.lock"
# How long a mutating command waits for another one to finish before giving up.
DEFAULT_TIMEOUT = 30.0
_POLL_INTERVAL = 0.05


class LockBusyError(ScmError):
    """Another scm process holds the lock this one needs."""

    exit_code = 75  # EX_TEMPFAIL: try again once the other process has finished


class _Held:
    """An open, locked lock file; closing it releases the lock."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd

    def release(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = -1


def holder_pid(path: Path) -> int | None:
    """The pid recorded in a lock file, if it names one."""
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _acquire(
    path: Path,
    timeout: float,
    busy_message: Callable[[int | None], str],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> _Held:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise _unusable(path, exc) from None
    deadline = clock() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if clock() >= deadline:
                os.close(fd)
                raise LockBusyError(busy_message(holder_pid(path))) from None
            sleep(_POLL_INTERVAL)
    # Record ourselves as the holder; a failure here (disk full) must not keep the lock.
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError:
        pass  # the lock still works; only the pid in the refusal message is missing
    return _Held(path, fd)


def _unusable(path: Path, exc: OSError) -> ScmError:
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return ConfigError(
            f"the state directory {path.parent} is read-only or not writable by this user: "
            "commands that change state cannot run"
        )
    if exc.errno == errno.ENOSPC:
        return ConfigError(f"no space left on the state directory {path.parent}")
    if exc.errno == errno.ENOENT:
        return ConfigError(f"the state directory {path.parent} does not exist")
    return ConfigError(f"cannot use lock file {path}: {exc.strerror}")


@contextlib.contextmanager
def state_lock(state_dir: Path, timeout: float = DEFAULT_TIMEOUT) -> Iterator[None]:
    """Hold the state directory's lock: one mutating scm process at a time.

    Re-entrant within a process is *not* provided: take it once, around the whole
    check-and-create.
    """
    path = state_dir / STATE_LOCK_NAME

    def busy(pid: int | None) -> str:
        who = f" (pid {pid})" if pid else ""
        return f"another scm process holds the state directory {state_dir}{who}; try again"

    held = _acquire(path, timeout, busy)
    try:
        yield
    finally:
        held.release()


class ServingLock:
    """Ownership of an address a server listens on, for the lifetime of the server.

    The lock file lives in ``lock_dir`` under a name derived from the address, so that
    two servers of any state directories on one host agree on it when they share a
    ``lock_dir`` (scm uses the socket's own directory for Unix sockets).
    """

    def __init__(self, lock_path: Path, address: str) -> None:
        self.lock_path = lock_path
        self.address = address
        self._held: _Held | None = None

    @classmethod
    def for_socket(cls, socket_path: Path) -> ServingLock:
        """The lock of a Unix socket path: ``.<name>.lock`` beside the socket."""
        return cls(socket_path.parent / f".{socket_path.name}.lock", str(socket_path))

    @classmethod
    def for_port(cls, lock_dir: Path, host: str, port: int) -> ServingLock:
        """The lock of a TCP address, kept in ``lock_dir`` (a host-wide directory)."""
        digest = hashlib.sha256(f"{host}:{port}".encode()).hexdigest()[:16]
        return cls(lock_dir / f".scm-port-{port}-{digest}.lock", f"{host}:{port}")

    def acquire(self) -> None:
        """Take the lock or refuse at once: a live server must never be displaced."""

        def busy(pid: int | None) -> str:
            who = f" (pid {pid})" if pid else ""
            return f"another server is listening on {self.address}{who}"

        self._held = _acquire(self.lock_path, 0.0, busy)

    def release(self) -> None:
        if self._held is not None:
            self._held.release()
            self._held = None

    def __enter__(self) -> ServingLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
