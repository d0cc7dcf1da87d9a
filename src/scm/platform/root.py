"""Reading a host's Linux interfaces (procfs, sysfs, /dev) below a root directory.

Every path scm reads about a host goes through :class:`HostRoot`, so a test or an
operator can point discovery at a copy of another machine's files. A missing file
means "unknown"; a file that exists but cannot be read or parsed becomes a
diagnostic, never an exception.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from scm.errors import DiscoveryError


@dataclass
class HostRoot:
    """A directory whose ``proc``, ``sys`` and ``dev`` are a Linux host's."""

    path: Path
    problems: list[str] = field(default_factory=list)
    sources_read: int = 0

    @classmethod
    def open(cls, path: Path | str = "/") -> HostRoot:
        root = Path(path)
        if not root.exists():
            raise DiscoveryError(f"root directory {root} does not exist")
        if not root.is_dir():
            raise DiscoveryError(f"root {root} is not a directory")
        return cls(root)

    def resolve(self, linux_path: str) -> Path:
        """The file under the root that stands for ``linux_path`` (an absolute path)."""
        return self.path / linux_path.lstrip("/")

    def exists(self, linux_path: str) -> bool:
        # lexists: a dangling /dev symlink still shows the node is configured.
        return os.path.lexists(self.resolve(linux_path))

    def read_text(self, linux_path: str, limit: int = 1 << 20) -> str | None:
        """The file's text, or None when it is missing or unreadable (noted as a problem)."""
        target = self.resolve(linux_path)
        try:
            with target.open("rb") as handle:
                data = handle.read(limit)
        except FileNotFoundError:
            return None
        except IsADirectoryError:
            self.problems.append(f"{linux_path} is a directory, expected a file")
            return None
        except OSError as exc:
            self.problems.append(f"cannot read {linux_path}: {exc.strerror or exc}")
            return None
        self.sources_read += 1
        return data.decode("utf-8", errors="replace")

    def read_int(self, linux_path: str) -> int | None:
        """A sysfs file holding one decimal integer, or None when missing or garbage."""
        text = self.read_text(linux_path)
        if text is None:
            return None
        try:
            return int(text.strip())
        except ValueError:
            self.problems.append(f"{linux_path} does not hold an integer: {text.strip()[:40]!r}")
            return None

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

    def glob(self, pattern: str) -> list[str]:
        """Linux paths below the root matching ``pattern`` (relative to /), sorted."""
        return sorted("/" + str(p.relative_to(self.path)) for p in self.path.glob(pattern))

    def pread(self, linux_path: str, size: int, offset: int) -> bytes | None:
        """``size`` bytes at ``offset`` of a device file, None when it cannot be read."""
        target = self.resolve(linux_path)
        try:
            fd = os.open(target, os.O_RDONLY)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self.problems.append(f"cannot open {linux_path}: {exc.strerror or exc}")
            return None
        try:
            return os.pread(fd, size, offset)
        except OSError as exc:
            self.problems.append(f"cannot read {linux_path} at {offset:#x}: {exc.strerror or exc}")
            return None
        finally:
            os.close(fd)
