"""Named points where a test may stop a command dead, to prove state survives ``kill -9``.

Code that changes state calls :func:`reach` at each step boundary. In normal runs this is
a dictionary lookup and nothing else. When the environment names the point
(``SCM_TEST_PAUSE_AT=<point>``, or ``<point>#N`` for its N-th passage), the process says
``scm: paused at <point> (pid P)`` on stderr, writes its pid to the marker file
``$SCM_TEST_PAUSE_DIR/<point>`` when that directory is set, and then waits until it is
killed: the test sees the marker (or the line), sends SIGKILL, and runs the next command
against whatever was left behind. No sleeps are guessed: the process stops exactly there.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

PAUSE_AT_ENV = "SCM_TEST_PAUSE_AT"
PAUSE_DIR_ENV = "SCM_TEST_PAUSE_DIR"

_passages: dict[str, int] = {}


def reach(point: str) -> None:
    """Mark that the step before ``point`` is complete; pause here if a test asked to."""
    wanted = os.environ.get(PAUSE_AT_ENV)
    if not wanted:
        return
    target, _, nth = wanted.partition("#")
    if target != point:
        return
    _passages[point] = _passages.get(point, 0) + 1
    if _passages[point] != (int(nth) if nth.isdigit() else 1):
        return
    marker_dir = os.environ.get(PAUSE_DIR_ENV)
    if marker_dir:
        tmp = Path(marker_dir) / f".{point}.{os.getpid()}"
        tmp.write_text(f"{os.getpid()}\n")
        tmp.rename(Path(marker_dir) / point)  # the test never sees a half-written marker
    sys.stderr.write(f"scm: paused at {point} (pid {os.getpid()})\n")
    sys.stderr.flush()
    while True:  # until the test kills us
        time.sleep(3600)
