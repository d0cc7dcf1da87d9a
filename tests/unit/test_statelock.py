"""The state directory's lock and the serving locks refuse a second holder, across processes."""

from __future__ import annotations

import errno
import multiprocessing
import os
from pathlib import Path

import pytest

from scm.errors import ConfigError
from scm.statelock import LockBusyError, ServingLock, state_lock


def _hold_state_lock(state_dir: str, ready: multiprocessing.Event, done: multiprocessing.Event):  # type: ignore[valid-type]
    with state_lock(Path(state_dir)):
        ready.set()  # type: ignore[attr-defined]
        done.wait(30)  # type: ignore[attr-defined]


def test_second_process_is_refused_and_told_the_holder(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    ready, done = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_state_lock, args=(str(tmp_path), ready, done))
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.raises(LockBusyError) as caught, state_lock(tmp_path, timeout=0.2):
            pass
        assert f"(pid {holder.pid})" in str(caught.value)
        assert caught.value.exit_code == 75
    finally:
        done.set()
        holder.join(30)
    with state_lock(tmp_path, timeout=5):  # released once the holder has finished
        pass


def test_a_killed_holder_leaves_no_lock(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    ready, done = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_state_lock, args=(str(tmp_path), ready, done))
    holder.start()
    assert ready.wait(30)
    os.kill(holder.pid or 0, 9)
    holder.join(30)
    with state_lock(tmp_path, timeout=5):
        pass


def test_serving_lock_refuses_a_second_server(tmp_path: Path) -> None:
    socket_path = tmp_path / "sds.sock"
    refused = f"another server is listening on {socket_path}"
    with ServingLock.for_socket(socket_path), pytest.raises(LockBusyError, match=refused):
        ServingLock.for_socket(socket_path).acquire()
    with ServingLock.for_socket(socket_path):  # free again once the first has stopped
        pass


def test_missing_state_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"), state_lock(tmp_path / "absent"):
        pass


@pytest.mark.parametrize(
    ("err", "message"),
    [(errno.EROFS, "read-only or not writable"), (errno.ENOSPC, "no space left")],
)
def test_unwritable_state_directory_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, err: int, message: str
) -> None:
    def refuse(*args: object, **kwargs: object) -> int:
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(ConfigError, match=message), state_lock(tmp_path):
        pass
