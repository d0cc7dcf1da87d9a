"""A full disk and a read-only state directory: one-line errors saying what to do,
reads that keep working, nothing half-created, and recovery once the fault ends."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

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


def _mount_small_tmpfs(mount_point: Path) -> subprocess.CompletedProcess[str]:
    mount_point.mkdir(exist_ok=True)
    return subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )


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


def full_disk_scenario(disk: Path) -> None:
    """On a small, just-mounted tmpfs: fill it, check every command, free it, recover."""
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


_IN_NAMESPACE = """
import sys
from pathlib import Path
from tests.integration.keys.test_faults import _mount_small_tmpfs, full_disk_scenario
disk = Path(sys.argv[1])
made = _mount_small_tmpfs(disk)
assert made.returncode == 0, made.stderr
full_disk_scenario(disk)
print("scenario passed")
"""


def test_full_disk(tmp_path: Path) -> None:
    """A small tmpfs mounted as root; unprivileged, the same in a user namespace (where the
    test is root of its own mounts). Which one ran is asserted, never skipped."""
    disk = tmp_path / "disk"
    forced = os.environ.get("SCM_TEST_FULL_DISK_VIA")
    if forced != "userns" and _mount_small_tmpfs(disk).returncode == 0:
        mechanism = "tmpfs mounted as root"
        try:
            full_disk_scenario(disk)
        finally:
            subprocess.run(["umount", "-l", str(disk)], check=False)
    else:
        mechanism = "tmpfs in a user namespace"
        unshare = shutil.which("unshare")
        assert unshare is not None, "neither mount nor unshare (util-linux) is available"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        namespace = [unshare, "--user", "--map-root-user", "--mount"]
        result = subprocess.run(
            [*namespace, sys.executable, "-c", _IN_NAMESPACE, str(disk)],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )
        assert result.returncode == 0 and "scenario passed" in result.stdout, result.stderr
    print(f"full disk via {mechanism}")
    if forced == "userns":  # SCM_TEST_FULL_DISK_VIA=userns checks the unprivileged path
        assert mechanism == "tmpfs in a user namespace"


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
    csr = tmp_path / "a.csr"
    _ok(
        run_scm(
            state,
            "ca",
            "csr",
            "a",
            "--namespace",
            "n",
            "--service-account",
            "s",
            "--output",
            str(csr),
        )
    )
    with _read_only(state) as mechanism:
        assert mechanism == ("read-only bind mount" if os.geteuid() == 0 else "chmod 0500")
        assert _labels(state) == {"a": "user", "scm-ca": "in use"}
        assert "trust domain" in _ok(run_scm(state, "ca", "show"))
        assert _ok(run_scm(state, "ca", "issue", "--csr", str(csr))).startswith("-----BEGIN")
        for args in (("keys", "generate", "b"), ("ca", "init"), ("keys", "prune")):
            _fails_cleanly(run_scm(state, *args), "read-only")
    _ok(run_scm(state, "keys", "generate", "b"))
