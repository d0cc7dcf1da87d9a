"""Small file-system helpers shared by every domain."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from typing import TYPE_CHECKING

from scm.errors import ConfigError, InputError, NotFoundError, ScmError

if TYPE_CHECKING:  # annotations only: `scm inspect` never loads pathlib (start-up time)
    from pathlib import Path

_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)

# Far above any certificate, key, CSR, collateral bundle or domain capabilities file.
MAX_INPUT_BYTES = 16 * 1024 * 1024


def write_atomic(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` so readers see the old or the new content, never half.

    The data goes to a dot-file in the same directory, is flushed to disk, gets its
    permissions before any content is visible, and is renamed over ``path``; the directory
    is then flushed too, so that the rename itself survives a power cut.
    """
    import tempfile  # deferred: it pulls in random and shutil, which `scm inspect` never needs

    payload = data.encode() if isinstance(data, str) else data
    directory = path.parent
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    fsync_directory(directory)


def fsync_directory(directory: Path) -> None:
    """Flush a directory's entries (a rename, a new file) to disk."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def storage_error(exc: OSError, where: Path | None = None) -> ScmError | None:
    """A one-line error saying what to do about a full or read-only disk, else None.

    ``where`` is the directory scm was changing (the state directory by default wording).
    """
    place = f"the state directory {where}" if where is not None else "the state directory"
    target = f": cannot write {exc.filename}" if exc.filename else ""
    if exc.errno in _NO_SPACE:
        return ConfigError(f"no space left on {place}{target}; free some space and run it again")
    if exc.errno in _READ_ONLY:
        return ConfigError(
            f"{place} is read-only or not writable by this user{target}; "
            "commands that change state cannot run (reads such as `scm keys list` still work)"
        )
    return None


def directory_problem(path: os.PathLike[str] | str, what: str) -> str | None:
    """Why ``path`` cannot serve as the directory ``what``, or None when it can."""
    if not os.path.exists(path):
        return f"{what} {os.fspath(path)} does not exist"
    if not os.path.isdir(path):
        return f"{what} {os.fspath(path)} is not a directory"
    return None


def write_output(path: Path, data: bytes | str, what: str = "output file") -> None:
    """Write a file the user named atomically, or a one-line error saying why it cannot be."""
    if not path.parent.is_dir():
        raise NotFoundError(f"directory {path.parent} does not exist")
    try:
        write_atomic(path, data)
    except IsADirectoryError:
        raise InputError(f"{what} {path} is a directory") from None
    except OSError as exc:
        raise InputError(f"cannot write {what} {path}: {exc.strerror}") from None


def open_input(path: Path, what: str = "file", flags: int = 0) -> int:
    """A read-only descriptor for a file the user named, or a one-line error saying why not.

    ``flags`` adds to O_RDONLY (O_NONBLOCK, so that a FIFO cannot hang the open).
    """
    try:
        return os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_CLOEXEC | flags)
    except FileNotFoundError:
        raise NotFoundError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"{what} {path} is a directory") from None
    except OSError as exc:
        raise NotFoundError(f"cannot read {what} {path}: {exc.strerror}") from None


def read_input(path: Path, what: str = "file", limit: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of a file the user named, or a one-line error saying what is wrong with it.

    The size is checked before reading (a 200 MB "quote" is refused without being read);
    a FIFO or device is read up to ``limit`` bytes and refused beyond.
    """
    fd = open_input(path, what)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise InputError(f"{what} {path} is a directory")
        if stat.S_ISREG(info.st_mode) and info.st_size > limit:
            raise InputError(f"{what} {path} is {info.st_size} bytes, more than the {limit} limit")
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise InputError(f"cannot read {what} {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise InputError(f"{what} {path} is more than the {limit} bytes limit")
    return data
