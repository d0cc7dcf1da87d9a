"""Help is always available: a broken settings file must not stand between a user and --help."""

from __future__ import annotations

import pytest

from scm.cli.main import main

HELP_WORDS = [
    ("--help",),
    ("keys", "--help"),
    ("keys", "list", "-h"),
    ("ca", "init", "--help"),
    ("sds", "serve", "--help"),
    ("inspect", "--help"),
]


@pytest.mark.parametrize("words", HELP_WORDS, ids=" ".join)
@pytest.mark.parametrize("config", ["/nonexistent/scm.toml", "{tmp}/broken.toml"])
def test_help_with_a_broken_settings_file(words, config, tmp_path, monkeypatch, capsys):
    (tmp_path / "broken.toml").write_text("[sdss\n")
    monkeypatch.setenv("SCM_CONFIG", config.format(tmp=tmp_path))
    with pytest.raises(SystemExit) as exited:
        main(list(words))
    out, err = capsys.readouterr()
    assert exited.value.code == 0, err
    assert "Usage:" in out and err == ""


def test_a_bare_group_prints_its_help_without_settings(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SCM_CONFIG", "/nonexistent/scm.toml")
    with pytest.raises(SystemExit):
        main(["keys"])
    assert "Usage:" in capsys.readouterr().out


def test_a_command_still_reads_the_settings_file(monkeypatch, capsys):
    monkeypatch.setenv("SCM_CONFIG", "/nonexistent/scm.toml")
    with pytest.raises(SystemExit) as exited:
        main(["keys", "list"])
    assert exited.value.code == 78
    assert "config file /nonexistent/scm.toml does not exist" in capsys.readouterr().err
