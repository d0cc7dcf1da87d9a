"""mutating(): the state directory's lock, joined by nested holds in one process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from scm.sds.records import CredentialRecords
from scm.state_mutation import mutating
from scm.statelock import LockBusyError, state_lock


def test_nested_holds_join_and_release_once(tmp_path: Path) -> None:
    # Held: a fresh flock cannot have it.
    with mutating(tmp_path), mutating(tmp_path), pytest.raises(LockBusyError):
        state_lock(tmp_path, timeout=0).__enter__()
    with state_lock(tmp_path, timeout=0):  # released after the outer hold
        pass


def test_creates_a_missing_state_directory(tmp_path: Path) -> None:
    with mutating(tmp_path / "new" / "state"):
        assert (tmp_path / "new" / "state").is_dir()


def test_another_thread_waits_its_turn(tmp_path: Path) -> None:
    order: list[str] = []

    def other() -> None:
        with mutating(tmp_path):
            order.append("other")

    with mutating(tmp_path):
        thread = threading.Thread(target=other)
        thread.start()
        thread.join(timeout=0.5)
        assert thread.is_alive()  # still waiting for our hold to end
        order.append("first")
    thread.join(timeout=60)
    assert order == ["first", "other"]


def test_another_process_is_refused_with_the_holder_pid(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from scm.statelock import LockBusyError, state_lock
        try:
            with state_lock(Path({str(tmp_path)!r}), timeout=0):
                print("got it")
        except LockBusyError as exc:
            print(exc)
        """
    )
    with mutating(tmp_path):
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
        ).stdout
    assert "another scm process holds the state directory" in out
    assert f"(pid {os.getpid()})" in out


def test_a_records_lock_holder_may_change_keys_without_waiting(tmp_path: Path) -> None:
    """The SDS records hold the state lock and retire keys inside it: they join, not wait."""
    with CredentialRecords(tmp_path / "sds").locked(), mutating(tmp_path, timeout=0):
        pass
    with mutating(tmp_path, timeout=0):  # and nothing is left held
        pass
