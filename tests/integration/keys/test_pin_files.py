"""PIN files that cannot be used: exit 78 naming the file, never a byte of the PIN;
a PIN file other users can read works, with a warning."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import scm
from tests.crash_harness import run_scm

SECRET = "s3cr3t-PIN-bytes"


@pytest.fixture
def state(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    assert run_scm(state, "keys", "list").returncode == 0  # creates the embedded token
    return state


def _with_pin_file(state: Path, pin_file: Path) -> subprocess.CompletedProcess[str]:
    return run_scm(state, "keys", "list", SCM_KEYS_PIN_FILE=str(pin_file))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"  \n\n", "is empty"),
        (b"\xff\xfe" + SECRET.encode() + b"\x00", "is not text"),
        (SECRET.encode() + b"\x00\x01", "control characters"),
        (SECRET.encode() + b"\nsecond line\n", "several lines"),
    ],
)
def test_unusable_pin_file(state: Path, tmp_path: Path, content: bytes, message: str) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_bytes(content)
    pin_file.chmod(0o600)
    result = _with_pin_file(state, pin_file)
    assert result.returncode == 78, result.stderr
    assert result.stderr.count("\n") == 1 and str(pin_file) in result.stderr
    assert message in result.stderr
    assert SECRET not in result.stderr and "second line" not in result.stderr


def test_pin_file_is_a_directory(state: Path, tmp_path: Path) -> None:
    result = _with_pin_file(state, tmp_path)
    assert result.returncode == 78 and f"the PIN file {tmp_path} is a directory" in result.stderr


def test_pin_file_is_missing(state: Path, tmp_path: Path) -> None:
    result = _with_pin_file(state, tmp_path / "absent")
    assert result.returncode == 78 and "does not exist" in result.stderr


def test_unreadable_pin_file(open_tmp: Path) -> None:
    """Read as a user who may not read it (root reads anything: run the check as nobody)."""
    pin_file = open_tmp / "pin"
    pin_file.write_text(SECRET + "\n")
    pin_file.chmod(0o600)
    check = (
        "import sys; from scm.keys.pin_file import read_pin_file; from pathlib import Path\n"
        "try:\n    read_pin_file(Path(sys.argv[1]))\n"
        "except Exception as exc:\n    print(type(exc).__name__, exc.exit_code, exc)\n"
    )
    command = [sys.executable, "-c", check, str(pin_file)]
    pythonpath = os.pathsep.join(sys.path)
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv is not None, "setpriv (util-linux) runs the check as nobody"
        command = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *command]
        # nobody may not be able to enter this checkout (a clone in a private directory): it
        # runs a copy of the scm package, which needs only the standard library here.
        ignore = shutil.ignore_patterns("__pycache__", "_proto")
        shutil.copytree(Path(scm.__file__).parent, open_tmp / "lib" / "scm", ignore=ignore)
        pythonpath = str(open_tmp / "lib")
    else:
        pin_file.chmod(0o000)
    env = {**os.environ, "PYTHONPATH": pythonpath}
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, cwd="/")
    out = done.stdout
    assert out.startswith("TokenLoginError 78 cannot read the PIN file"), (out, done.stderr)
    assert str(pin_file) in out and SECRET not in out


def test_pin_file_readable_by_others_warns(state: Path, tmp_path: Path) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_bytes((state / "softhsm" / "user.pin").read_bytes())
    pin_file.chmod(0o644)
    result = _with_pin_file(state, pin_file)
    assert result.returncode == 0, result.stderr
    assert f"the PIN file {pin_file} is readable by other users" in result.stderr
    assert pin_file.read_text().strip() not in result.stderr
