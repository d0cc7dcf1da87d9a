"""``scm console`` refuses unsafe or unusable settings with one line and a non-zero exit."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration.console.conftest import SCM


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCM, "--state-dir", str(tmp_path / "state"), "console", *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--listen", "0.0.0.0:0"],
            "not loopback: it needs --tls-cert, --tls-key and --token-file",
        ),
        (["--listen", "nonsense"], "expected HOST:PORT"),
        (["--listen", "127.0.0.1:0", "--token-file", "/nonexistent/token"], "does not exist"),
        (["--collateral", "/nonexistent/bundle.json"], "does not exist"),
        (["--policy", "/nonexistent/policy.toml"], "cannot read policy"),
    ],
)
def test_bad_settings_are_one_line_errors(tmp_path: Path, args: list[str], message: str) -> None:
    result = run(tmp_path, *args)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_port_in_use_is_a_one_line_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(tmp_path, "--listen", f"127.0.0.1:{port}")
    assert result.returncode != 0 and "cannot listen on 127.0.0.1" in result.stderr
    assert "Traceback" not in result.stderr
