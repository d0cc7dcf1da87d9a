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


def test_with_tls_and_a_token_only_the_token_holder_reads_a_page(tmp_path: Path) -> None:
    import re
    import signal
    import ssl
    import urllib.error
    import urllib.request

    from tests.tls import make_tls

    tls = make_tls(tmp_path)
    token = tmp_path / "token"
    token.write_text("s3cret-console-token-0123456789\n")
    process = subprocess.Popen(
        [SCM, "--state-dir", str(tmp_path / "state"), "console", "--listen", "127.0.0.1:0",
         "--tls-cert", str(tls.cert), "--tls-key", str(tls.key), "--token-file", str(token)],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        match = re.search(r"(https://127\.0\.0\.1:\d+/console/)", line)
        assert match, line
        url = match.group(1) + "fleet"
        context = ssl.create_default_context(cafile=str(tls.ca))

        def fetch(headers: dict[str, str]) -> int:
            request = urllib.request.Request(url, headers=headers)
            try:
                with urllib.request.urlopen(request, context=context, timeout=30) as response:
                    return int(response.status)
            except urllib.error.HTTPError as exc:
                return exc.code

        assert fetch({}) == 401
        assert fetch({"Authorization": "Bearer wrong-token-wrong-token"}) == 401
        assert fetch({"Authorization": "Bearer s3cret-console-token-0123456789"}) == 200
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "s3cret-console-token" not in stderr  # the token is never logged


def test_the_console_settings_table_applies_and_options_override_it(tmp_path: Path) -> None:
    config = tmp_path / "scm.toml"
    config.write_text('[console]\nlisten = "0.0.0.0:0"\n')
    from_file = subprocess.run(
        [SCM, "--config", str(config), "--state-dir", str(tmp_path / "s"), "console"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert from_file.returncode != 0 and "--listen 0.0.0.0 is not loopback" in from_file.stderr
    overridden = subprocess.run(
        [SCM, "--config", str(config), "--state-dir", str(tmp_path / "s"), "console",
         "--listen", "127.0.0.1:0", "--collateral", str(tmp_path / "missing.json")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    # the loopback option won over the table: it got as far as checking the bundle
    assert "collateral bundle" in overridden.stderr and "does not exist" in overridden.stderr
