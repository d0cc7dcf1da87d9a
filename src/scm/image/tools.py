"""Running the external programs the image build relies on, with errors that say why.

Every program runs with a timeout and resource limits: the checker feeds them files an
attacker may have crafted, and a build step that hangs must end with a message, not never.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scm.image.errors import ImageBuildError, ImageToolMissing

log = logging.getLogger(__name__)

GIB = 1 << 30

# Program -> Debian package that provides it (what `make install` puts on the machine).
BUILD_TOOLS = {
    "mmdebstrap": "mmdebstrap",
    "mkfs.ext4": "e2fsprogs",
    "debugfs": "e2fsprogs",
    "mkfs.vfat": "dosfstools",
    "mcopy": "mtools",
    "mmd": "mtools",
    "sfdisk": "fdisk",
    "qemu-img": "qemu-utils",
    "objcopy": "binutils",
}


@dataclass(frozen=True)
class Limits:
    """Wall-clock timeout and kernel resource limits (None: unlimited) for one program."""

    timeout: float
    address_space: int | None = None  # RLIMIT_AS, bytes
    cpu_seconds: int | None = None  # RLIMIT_CPU
    file_size: int | None = None  # RLIMIT_FSIZE, bytes: the largest file it may write

    def prefix(self) -> list[str]:
        """The ``prlimit`` command line that runs a program under these limits (or nothing).

        util-linux's prlimit sets them and execs the program. A Python ``preexec_fn`` would
        run Python code in the forked child, which is unsafe in a process with threads (gRPC,
        the PKCS#11 lock) and breaks under gRPC's fork handlers.
        """
        options = [
            f"--{name}={value}"
            for name, value in (
                ("as", self.address_space),
                ("cpu", self.cpu_seconds),
                ("fsize", self.file_size),
            )
            if value is not None
        ]
        return [_which("prlimit") or "prlimit", *options, "--"] if options else []


# Build steps (debootstrap, apt in a chroot, mkfs of a whole disk) are long and need memory.
BUILD_LIMITS = Limits(timeout=3 * 3600)
# Reading one thing out of an untrusted image: small, quick, bounded like nova bounds qemu-img.
READ_LIMITS = Limits(timeout=120, address_space=2 * GIB, cpu_seconds=60, file_size=GIB)


def require_tools(names: Sequence[str]) -> None:
    """Fail before any long work when one of ``names`` is not on PATH."""
    missing = [name for name in names if _which(name) is None]
    if missing:
        packages = sorted({BUILD_TOOLS.get(name, name) for name in missing})
        raise ImageToolMissing(
            f"missing {', '.join(missing)}: install the Debian package(s) {', '.join(packages)}"
        )


def run(
    step: str,
    argv: Sequence[str | Path],
    *,
    stream: bool = False,
    stdin: str | None = None,
    limits: Limits = BUILD_LIMITS,
    env: dict[str, str] | None = None,
) -> str:
    """Run a program for build step ``step``; return its stdout or raise with its last words.

    With ``stream`` the program's output goes to our stderr as it comes (long steps);
    ``stdin`` is text fed to the program; ``env`` replaces the environment.
    """
    if stream:
        completed = _run(step, argv, limits, input=stdin, text=True, env=env)
        output = ""
    else:
        completed = _run(step, argv, limits, input=stdin, capture_output=True, text=True, env=env)
        output = str(completed.stdout)
    if completed.returncode != 0:
        detail = (completed.stderr or "").strip().splitlines()[-1:] if not stream else []
        reason = detail[0] if detail else _status(completed.returncode)
        raise ImageBuildError(f"{step} failed: {Path(str(argv[0])).name}: {reason}")
    return output


def probe(
    step: str, argv: Sequence[str | Path], limits: Limits = READ_LIMITS
) -> subprocess.CompletedProcess[bytes]:
    """Run a program whose exit status is an answer (debugfs, mdir); bytes out, no raise.

    Only a timeout raises: a program killed by the clock has answered nothing.
    """
    return _run(step, argv, limits, capture_output=True)


def _run(
    step: str, argv: Sequence[str | Path], limits: Limits, **options: object
) -> subprocess.CompletedProcess[Any]:
    command = [str(part) for part in argv]
    command[0] = _which(command[0]) or command[0]
    log.debug("%s: %s", step, " ".join(command))
    try:
        return subprocess.run(  # type: ignore[call-overload, no-any-return]
            [*limits.prefix(), *command], timeout=limits.timeout, check=False, **options
        )
    except subprocess.TimeoutExpired:
        raise ImageBuildError(
            f"{step} failed: {Path(command[0]).name} did not finish in {limits.timeout:g} s"
        ) from None
    except OSError as exc:
        raise ImageBuildError(f"{step} failed: {Path(command[0]).name}: {exc.strerror}") from None


def _status(returncode: int) -> str:
    # A negative status is the signal that ended it: SIGXCPU/SIGKILL mean a limit was hit.
    if returncode < 0:
        return f"killed by signal {-returncode} (a resource limit?)"
    return f"exit status {returncode}"


def _which(name: str) -> str | None:
    # Build tools live in the sbin directories, which a non-login PATH may lack.
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
