"""Creating the embedded token never hangs, never leaves a child behind, never half-exists."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from scm.keys import TokenLoginError, TokenUnavailableError
from scm.keys.softhsm import ensure_embedded_token


def _fake_tool(bin_dir: Path, body: str) -> None:
    bin_dir.mkdir()
    tool = bin_dir / "softhsm2-util"
    tool.write_text(f"#!/bin/sh\n{body}\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)


def test_a_tool_that_never_finishes_is_stopped_and_reaped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid_file = tmp_path / "tool.pid"
    # Holds its terminal open and never exits, as a wedged softhsm2-util would.
    _fake_tool(tmp_path / "bin", f"echo $$ > {pid_file}\nexec sleep 600")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    state = tmp_path / "state"
    with pytest.raises(TokenUnavailableError, match="did not finish within 2 s"):
        ensure_embedded_token(state, "scm", timeout=2.0)
    pid = int(pid_file.read_text())
    # Reaped, not a zombie: the pid no longer exists at all.
    assert not Path(f"/proc/{pid}").exists()
    assert not (state / "softhsm").exists()
    assert not list(state.glob(".softhsm.tmp-*"))


def test_a_failing_tool_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_tool(tmp_path / "bin", "echo 'ERROR: could not initialise the token'\nexit 1")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    state = tmp_path / "state"
    with pytest.raises(TokenUnavailableError, match="could not initialise the token"):
        ensure_embedded_token(state, "scm")
    assert not (state / "softhsm").exists()
    assert not list(state.glob(".softhsm.tmp-*"))


def test_a_token_without_its_pin_file_is_never_deleted(tmp_path: Path) -> None:
    """What an older scm left: token files but no PIN file. They may hold keys."""
    tokens = tmp_path / "softhsm" / "tokens" / "some-token"
    tokens.mkdir(parents=True)
    (tokens / "token.object").write_bytes(b"token")
    with pytest.raises(TokenLoginError, match=r"move .* aside to start with a new, empty token"):
        ensure_embedded_token(tmp_path, "scm")
    assert (tokens / "token.object").exists()
