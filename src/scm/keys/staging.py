"""Staging labels: how a half-made token object is named until it is complete.

scm creates a key (and its certificate and chain) under a staging label and renames the
objects to the real label only once all of them exist, the private key last: a key is
visible under its label complete or not at all. A staging label names the process that
made it and when, so the next mutating command can tell an abandoned one (its process is
gone, or it is older than :data:`MAX_AGE`) from one still being built, and remove it.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable

from scm.processes import process_alive

PREFIX = ".scm-staging-"
#: After this many seconds a staging object is abandoned even if its pid is alive (reused).
MAX_AGE = 60.0


def new_label(clock: Callable[[], float] = time.time) -> str:
    """A fresh staging label owned by this process (at most 48 characters)."""
    return f"{PREFIX}{os.getpid()}-{int(clock())}-{secrets.token_hex(6)}"


def is_staging(label: str) -> bool:
    return label.startswith(PREFIX)


def is_abandoned(
    label: str,
    clock: Callable[[], float] = time.time,
    alive: Callable[[int], bool] | None = None,
) -> bool:
    """Whether the staging object ``label`` can be removed: its maker is gone or too old."""
    try:
        pid_text, created_text, _ = label[len(PREFIX) :].split("-", 2)
        pid, created = int(pid_text), int(created_text)
    except ValueError:
        return True  # not one of ours in shape: nothing will ever finish it
    if clock() - created > MAX_AGE:
        return True
    return not (alive or process_alive)(pid)
