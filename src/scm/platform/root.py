"""Reading a host's Linux interfaces (procfs, sysfs, /dev) below a root directory.

Every path scm reads about a host goes through :class:`HostRoot`, so a test or an
operator can point discovery at a copy of another machine's files. A missing file
means "unknown"; a file that exists but cannot be read or parsed becomes a
diagnostic, never an exception.

A host root may be a copy from another machine or a tree someone else controls: files
are opened non-blocking and only regular files are read (a FIFO would block the open or
the read forever), reads are bounded, and numbers are checked against what a real
kernel could report.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable

from scm.errors import DiscoveryError
from scm.files import directory_problem

MAX_FILE_BYTES = 1 << 20  # far above any sysfs value or a many-core /proc/cpuinfo


class HostRoot:
    """A directory whose ``proc``, ``sys`` and ``dev`` are a Linux host's.

    ``problems`` collects what could not be read (they become diagnostics);
    ``sources_read`` counts the files that could. Paths are text joined with ``os.path``:
    pathlib (with the urllib.parse and ipaddress modules it imports) would be a sixth of
    what `scm inspect` adds to the interpreter's start-up.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[str] = []
        self.sources_read = 0

    @classmethod
    def open(cls, path: os.PathLike[str] | str = "/") -> HostRoot:
        root = os.fspath(path)
        problem = directory_problem(root, "host root")
        if problem is not None:
            raise DiscoveryError(problem)
        return cls(root)

    def resolve(self, linux_path: str) -> str:
        """The file under the root that stands for ``linux_path`` (an absolute path)."""
        return os.path.join(self.path, linux_path.lstrip("/"))

    def exists(self, linux_path: str) -> bool:
        # lexists: a dangling /dev symlink still shows the node is configured.
        return os.path.lexists(self.resolve(linux_path))

    def is_dir(self, linux_path: str) -> bool:
        return os.path.isdir(self.resolve(linux_path))

    def entries(self, linux_dir: str) -> list[str]:
        """The names in the directory ``linux_dir``, sorted; none when it cannot be listed."""
        try:
            return sorted(os.listdir(self.resolve(linux_dir)))
        except OSError:
            return []

    def read_text(self, linux_path: str, limit: int = MAX_FILE_BYTES) -> str | None:
        """The file's text, or None when it is missing or unreadable (noted as a problem)."""
        fd = self._open(linux_path, stat.S_ISREG)
        if fd is None:
            return None
        try:
            data = os.read(fd, limit + 1)
        except OSError as exc:
            self.problems.append(f"cannot read {linux_path}: {exc.strerror or exc}")
            return None
        finally:
            os.close(fd)
        if len(data) > limit:
            self.problems.append(f"{linux_path} is larger than {limit} bytes: ignored")
            return None
        self.sources_read += 1
        return data.decode("utf-8", errors="replace")

    def read_int(self, linux_path: str, maximum: int = 1 << 62) -> int | None:
        """A sysfs file holding one decimal integer in ``0..maximum``, else None (noted)."""
        text = self.read_text(linux_path)
        if text is None:
            return None
        value = text.strip()
        if not value.isascii() or not value.isdigit() or len(value) > 20:
            self.problems.append(f"{linux_path} does not hold an integer count: {value[:40]!r}")
            return None
        number = int(value)
        if number > maximum:
            self.problems.append(f"{linux_path} holds {value[:40]}, more than {maximum}: ignored")
            return None
        return number

    def read_flag(self, linux_path: str) -> bool | None:
        """A module parameter such as ``Y``/``N`` or ``1``/``0``, None when missing or garbage."""
        text = self.read_text(linux_path)
        if text is None:
            return None
        value = text.strip().upper()
        if value in ("Y", "1"):
            return True
        if value in ("N", "0"):
            return False
        self.problems.append(f"{linux_path} holds {text.strip()[:40]!r}, expected Y or N")
        return None

    def pread(self, linux_path: str, size: int, offset: int) -> bytes | None:
        """``size`` bytes at ``offset`` of a character device, None when it cannot be read."""
        fd = self._open(linux_path, stat.S_ISCHR)
        if fd is None:
            return None
        try:
            return os.pread(fd, size, offset)
        except OSError as exc:
            self.problems.append(f"cannot read {linux_path} at {offset:#x}: {exc.strerror or exc}")
            return None
        finally:
            os.close(fd)

    def _open(self, linux_path: str, wanted: Callable[[int], bool]) -> int | None:
        """A descriptor for the file if it is of the ``wanted`` kind, else None (noted).

        O_NONBLOCK makes opening a FIFO return at once; fstat then refuses it. Regular
        files and the cpuid device ignore the flag. O_NOFOLLOW: the files read are never
        symbolic links in procfs, sysfs or /dev, and in a tree someone else made, one could
        point at a host file whose first bytes would then be quoted in a diagnostic.
        """
        target = self.resolve(linux_path)
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            fd = os.open(target, flags)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                self.problems.append(f"{linux_path} is a symbolic link: not followed")
            elif exc.errno == errno.EISDIR:
                self.problems.append(f"{linux_path} is a directory, expected a file")
            else:
                self.problems.append(f"cannot open {linux_path}: {exc.strerror or exc}")
            return None
        try:
            mode = os.fstat(fd).st_mode
        except OSError as exc:
            os.close(fd)
            self.problems.append(f"cannot stat {linux_path}: {exc.strerror or exc}")
            return None
        if stat.S_ISDIR(mode):
            os.close(fd)
            self.problems.append(f"{linux_path} is a directory, expected a file")
            return None
        if not wanted(mode):
            os.close(fd)
            kind = "a character device" if wanted is stat.S_ISCHR else "a regular file"
            self.problems.append(f"{linux_path} is not {kind}: ignored")
            return None
        return fd
