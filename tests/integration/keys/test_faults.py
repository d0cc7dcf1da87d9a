"""A full disk and a read-only state directory: one-line errors saying what to do,
reads that keep working, nothing half-created, and recovery once the fault ends."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.crash_harness import run_scm


def _fails_cleanly(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode not in (0, 70), result.stderr
    assert result.stderr.startswith("scm: error: ") and message in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr  # one line, no traceback


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def _labels(state: Path) -> dict[str, str]:
    listed = json.loads(_ok(run_scm(state, "keys", "list", "--format", "json")))
    return {entry["label"]: entry["state"] for entry in listed}


@contextlib.contextmanager
def _small_tmpfs(mount_point: Path) -> Iterator[str]:
    """A 4 MiB tmpfs at ``mount_point``; yields which mechanism gave it."""
    mount_point.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        pytest.fail(f"a full-disk test needs a small tmpfs; mount said: {made.stderr.strip()}")
    try:
        yield "tmpfs"
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(directory: Path) -> Path:
    """Write zeros until the file system is full."""
    filler = directory / "filler"
    with filler.open("wb") as handle, contextlib.suppress(OSError):
        while True:
            handle.write(b"\0" * 65536)
            handle.flush()
    with contextlib.suppress(OSError):
        os.sync()
    return filler


def test_full_disk(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    with _small_tmpfs(disk) as mechanism:
        assert mechanism == "tmpfs"
        state = disk / "state"
        _ok(run_scm(state, "ca", "init"))
        _ok(run_scm(state, "keys", "generate", "a"))
        filler = _fill(disk)

        _fails_cleanly(run_scm(state, "keys", "generate", "b"), "no space left")
        _fails_cleanly(run_scm(disk / "fresh", "keys", "list"), "no space left")
        assert not (disk / "fresh" / "softhsm").exists()
        assert not list((disk / "fresh").glob(".softhsm.tmp-*"))
        # Reads and signing need no space.
        assert _labels(state) == {"a": "user", "scm-ca": "in use"}
        _ok(run_scm(state, "ca", "show"))

        filler.unlink()
        _ok(run_scm(state, "keys", "generate", "b"))
        assert _labels(state) == {"a": "user", "b": "user", "scm-ca": "in use"}
        _ok(run_scm(disk / "fresh", "keys", "list"))


@contextlib.contextmanager
def _read_only(directory: Path) -> Iterator[str]:
    """Make ``directory`` read-only for scm; yields which mechanism did it."""
    if os.geteuid() == 0:  # root ignores modes: a read-only bind mount
        subprocess.run(["mount", "--bind", str(directory), str(directory)], check=True)
        try:
            subprocess.run(
                ["mount", "-o", "remount,ro,bind", str(directory), str(directory)], check=True
            )
            yield "read-only bind mount"
        finally:
            subprocess.run(["umount", "-l", str(directory)], check=False)
    else:
        modes = {p: p.stat().st_mode for p in [directory, *directory.rglob("*")] if p.is_dir()}
        for path in modes:
            path.chmod(0o500)
        try:
            yield "chmod 0500"
        finally:
            for path, mode in modes.items():
                path.chmod(mode)


def test_read_only_state_directory(tmp_path: Path) -> None:
    state = tmp_path / "state"
    _ok(run_scm(state, "ca", "init"))
    _ok(run_scm(state, "keys", "generate", "a"))
    with _read_only(state) as mechanism:
        assert mechanism == ("read-only bind mount" if os.geteuid() == 0 else "chmod 0500")
        assert _labels(state) == {"a": "user", "scm-ca": "in use"}
        assert "trust domain" in _ok(run_scm(state, "ca", "show"))
        for args in (("keys", "generate", "b"), ("ca", "init"), ("keys", "prune")):
            _fails_cleanly(run_scm(state, *args), "read-only")
    _ok(run_scm(state, "keys", "generate", "b"))
