"""Stop a real scm process dead at a named step, as ``kill -9`` would, for recovery tests.

The process runs with ``SCM_TEST_PAUSE_AT=<point>`` (see :mod:`scm.crashpoints`); once
its marker file appears it is paused exactly there, and gets SIGKILL. No guessed sleeps:
if the point is never reached the helper says so with the process's output.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from scm.crashpoints import PAUSE_AT_ENV, PAUSE_DIR_ENV

SCM = shutil.which("scm", path=str(Path(sys.executable).parent)) or "scm"
# Generous: the machine is shared and RSA-3072 generation in SoftHSM2 takes a while.
REACH_TIMEOUT_S = 180.0


def scm_env(state_dir: Path, **extra: str) -> dict[str, str]:
    environ = {**os.environ, "SCM_STATE_DIR": str(state_dir), **extra}
    environ.pop("SCM_PKCS11_PIN", None)  # the embedded token's own PIN file applies
    for name in (PAUSE_AT_ENV, PAUSE_DIR_ENV):
        if name not in extra:
            environ.pop(name, None)
    return environ


def run_scm(state_dir: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """Run ``scm ARGS`` to completion against ``state_dir``."""
    return subprocess.run(
        [SCM, *args],
        capture_output=True,
        text=True,
        timeout=REACH_TIMEOUT_S,
        env=scm_env(state_dir, **extra),
    )


def kill_at(point: str, state_dir: Path, *args: str, work_dir: Path) -> None:
    """Run ``scm ARGS``, wait until it pauses at ``point``, and SIGKILL it there."""
    markers = work_dir / f"markers-{point}"
    markers.mkdir(parents=True, exist_ok=True)
    log = work_dir / f"{point}.log"
    env = scm_env(state_dir, **{PAUSE_AT_ENV: point, PAUSE_DIR_ENV: str(markers)})
    with log.open("wb") as output:
        proc = subprocess.Popen([SCM, *args], stdout=output, stderr=output, env=env)
    deadline = time.monotonic() + REACH_TIMEOUT_S
    try:
        while not (markers / point).exists():
            if proc.poll() is not None:
                raise AssertionError(
                    f"`scm {' '.join(args)}` exited {proc.returncode} before reaching {point}: "
                    f"{log.read_text(errors='replace')}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"`scm {' '.join(args)}` never reached {point}")
            time.sleep(0.02)  # polling for the marker, not waiting for a guessed moment
        assert int((markers / point).read_text()) == proc.pid
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()  # reaped: a zombie would still look alive to the staging sweep
