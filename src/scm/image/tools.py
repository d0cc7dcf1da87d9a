"""Running the external programs the image build relies on, with errors that say why."""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from scm.image.errors import ImageBuildError, ImageToolMissing

log = logging.getLogger(__name__)

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


def require_tools(names: Sequence[str]) -> None:
    """Fail before any long work when one of ``names`` is not on PATH."""
    missing = [name for name in names if _which(name) is None]
    if missing:
        packages = sorted({BUILD_TOOLS.get(name, name) for name in missing})
        raise ImageToolMissing(
            f"missing {', '.join(missing)}: install the Debian package(s) {', '.join(packages)}"
        )


def run(
    step: str, argv: Sequence[str | Path], *, stream: bool = False, stdin: str | None = None
) -> str:
    """Run a program for build step ``step``; return its stdout or raise with its last words.

    With ``stream`` the program's output goes to our stderr as it comes (long steps);
    ``stdin`` is text fed to the program.
    """
    command = [str(part) for part in argv]
    command[0] = _which(command[0]) or command[0]
    log.debug("%s: %s", step, " ".join(command))
    if stream:
        completed = subprocess.run(command, input=stdin, text=True, check=False)
        output = ""
    else:
        completed = subprocess.run(
            command, input=stdin, capture_output=True, text=True, check=False
        )
        output = completed.stdout
    if completed.returncode != 0:
        detail = (completed.stderr or "").strip().splitlines()[-1:] if not stream else []
        reason = detail[0] if detail else f"exit status {completed.returncode}"
        raise ImageBuildError(f"{step} failed: {Path(command[0]).name}: {reason}")
    return output


def _which(name: str) -> str | None:
    # Build tools live in the sbin directories, which a non-login PATH may lack.
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
