"""Reading a PIN file: the PIN, or a one-line error naming the file and never its content."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

from scm.keys.errors import TokenLoginError

log = logging.getLogger(__name__)

# A PIN is a short line; anything much longer is the wrong file.
_MAX_PIN_FILE = 4096


def read_pin_file(path: Path) -> str:
    """The PIN in ``path`` (one line of text), warning when other users can read it."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise TokenLoginError(f"the PIN file {path} does not exist") from None
    except OSError as exc:
        raise TokenLoginError(f"cannot read the PIN file {path}: {exc.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise TokenLoginError(f"the PIN file {path} is a directory; name the file holding the PIN")
    if not stat.S_ISREG(info.st_mode):
        raise TokenLoginError(f"the PIN file {path} is not a regular file")
    if info.st_size > _MAX_PIN_FILE:
        raise TokenLoginError(f"the PIN file {path} is too large to hold a PIN")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TokenLoginError(
            f"cannot read the PIN file {path}: {exc.strerror}; "
            "check its owner and mode (0600, owned by the user scm runs as)"
        ) from None
    # Say nothing of the content: it is, or is meant to be, a PIN.
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise TokenLoginError(f"the PIN file {path} is not text; it must hold the PIN") from None
    pin = text.strip()
    if not pin:
        raise TokenLoginError(f"the PIN file {path} is empty; write the PIN into it")
    if not pin.isprintable():
        raise TokenLoginError(
            f"the PIN file {path} holds control characters or several lines; "
            "it must hold the PIN on one line"
        )
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("the PIN file %s is readable by other users: run chmod 600 %s", path, path)
    return pin
