"""Named points where a test can stop an scm process to kill it there (crash tests).

``SCM_TEST_PAUSE_AT=NAME`` (or ``NAME#N`` for its N-th passage) makes the process say
``scm: paused at NAME (pid P)`` on stderr and wait there until it is killed. Unset, a
pause point costs one dictionary lookup. The convention is the one the keys and CA
crash harness uses, so one test helper drives both.
"""

from __future__ import annotations

import os
import sys
import time

PAUSE_ENV = "SCM_TEST_PAUSE_AT"

_passages: dict[str, int] = {}


def pause_point(name: str) -> None:
    """Stop here for good if the test environment asks to (see the module docstring)."""
    wanted = os.environ.get(PAUSE_ENV)
    if not wanted:
        return
    target, _, nth = wanted.partition("#")
    if target != name:
        return
    _passages[name] = _passages.get(name, 0) + 1
    if _passages[name] != (int(nth) if nth.isdigit() else 1):
        return
    sys.stderr.write(f"scm: paused at {name} (pid {os.getpid()})\n")
    sys.stderr.flush()
    while True:  # until the test's kill -9
        time.sleep(3600)
