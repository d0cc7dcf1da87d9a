"""Named points where a test may stop a command dead, to prove state survives ``kill -9``.

Code that changes state calls :func:`reach` at each step boundary. In normal runs this is
a dictionary lookup and nothing else. When the environment names the point
(``SCM_TEST_PAUSE_AT=<point>``), the process writes its pid to the marker file
``$SCM_TEST_PAUSE_DIR/<point>`` and then waits until it is killed: the test sees the
marker, sends SIGKILL, and runs the next command against whatever was left behind.
No sleeps are guessed: the process is stopped exactly at the point named.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

PAUSE_AT_ENV = "SCM_TEST_PAUSE_AT"
PAUSE_DIR_ENV = "SCM_TEST_PAUSE_DIR"


def reach(point: str) -> None:
    """Mark that the step before ``point`` is complete; pause here if a test asked to."""
    if os.environ.get(PAUSE_AT_ENV) != point:
        return
    marker_dir = Path(os.environ.get(PAUSE_DIR_ENV) or ".")
    tmp = marker_dir / f".{point}.{os.getpid()}"
    tmp.write_text(f"{os.getpid()}\n")
    tmp.rename(marker_dir / point)  # the test never sees a half-written marker
    while True:  # until the test kills us
        time.sleep(3600)
