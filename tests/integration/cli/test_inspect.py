"""``scm inspect`` as a user runs it: the installed console script, every format, bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hostroots import HOST_NAMES

FIXTURES = Path(__file__).parents[2] / "fixtures"
SCM = shutil.which("scm", path=str(Path(sys.executable).parent)) or "scm"


def scm(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``scm args``; ``env`` adds to this process's environment."""
    environ = {**os.environ, **env} if env else None
    return subprocess.run([SCM, *args], capture_output=True, text=True, timeout=60, env=environ)


@pytest.mark.parametrize("host", HOST_NAMES)
@pytest.mark.parametrize("fmt", ["text", "json", "nfd", "placement"])
def test_every_fixture_in_every_format(host_root, host, fmt):
    result = scm("inspect", "--root", str(host_root(host)), "--format", fmt)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    if fmt in ("json", "placement"):
        json.loads(result.stdout)
    assert result.stdout.endswith("\n")


def test_json_on_this_machine_explains_no_tee():
    result = scm("inspect", "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["schema"] == "scm.platform/v1"
    assert report["sgx"]["enabled"] is False
    text = scm("inspect").stdout
    assert "no usable TEE" in text.splitlines()[0]


def test_nfd_output_file_is_written_atomically(host_root, tmp_path):
    target = tmp_path / "scm.features"
    target.write_text("old content\n")
    result = scm("inspect", "--root", str(host_root("tdx-host")), "--format", "nfd", "--output",
                 str(target))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "intel.feature.node.kubernetes.io/tdx=true" in target.read_text().splitlines()
    # Only the report is left beside the host copy: no dot-file from the atomic write.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hosts", "scm.features"]


def test_domcaps_file(host_root):
    result = scm(
        "inspect", "--root", str(host_root("sgx-2socket")), "--format", "json",
        "--domcaps", str(FIXTURES / "domcaps" / "sgx-2socket.xml"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["libvirt"]["sgx_supported"] is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["inspect", "--root", "/does/not/exist"], "host root /does/not/exist does not exist"),
        (["inspect", "--domcaps", "/does/not/exist.xml"], "does not exist"),
        (["inspect", "--output", "/does/not/exist/file"], "directory /does/not/exist does not"),
        (["--config", "/does/not/exist.toml", "inspect"], "config file"),
        (["inspect", "--format", "yaml"], "Invalid value for '--format'"),
        (["no-such-command"], "No such command 'no-such-command'"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(args, message):
    result = scm(*args)
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert message in lines[0]


def test_empty_root_fails_but_a_bad_domcaps_does_not(tmp_path, host_root):
    assert scm("inspect", "--root", str(tmp_path)).returncode != 0
    bad = scm(
        "inspect", "--root", str(host_root("no-tee")),
        "--domcaps", str(FIXTURES / "domcaps" / "truncated.xml"),
    )  # fmt: skip
    assert bad.returncode == 0
    assert "libvirt domain capabilities ignored" in bad.stdout


def test_debug_shows_the_traceback():
    result = scm("--debug", "inspect", "--root", "/does/not/exist")
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_help_lists_commands_without_importing_them():
    result = scm("--help")
    assert result.returncode == 0
    assert "inspect" in result.stdout


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ("[sdss]\nworkers = 2\n", "unknown table [sdss]"),
        ("state_dir = 5\n", "state_dir must be a string, got an integer"),
        ("log_level = 'loud'\n", "log level 'loud' is not one of"),
        ("not toml [", "is not valid TOML"),
    ],
)
def test_inspect_refuses_a_broken_settings_file_like_every_command(tmp_path, settings, message):
    """inspect uses no settings, yet a settings file any other command would refuse fails it
    too (exit 78, one line), rather than being noticed only by the next command."""
    config = tmp_path / "scm.toml"
    config.write_text(settings)
    for args in (["--config", str(config), "inspect"], ["--config", str(config), "keys", "list"]):
        result = scm(*args)
        assert result.returncode == 78, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, result.stderr)


def test_inspect_refuses_a_bad_log_level_variable() -> None:
    result = scm("inspect", env={"SCM_LOG_LEVEL": "chatty"})
    assert result.returncode == 78
    assert "log level 'chatty' is not one of debug, info, warning, error" in result.stderr
