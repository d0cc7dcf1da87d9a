"""Settings precedence: defaults, then the TOML file, then SCM_* variables, then flags."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from scm.config import load_settings
from scm.errors import ConfigError


@dataclass(frozen=True)
class DemoSettings:
    module: str = "/usr/lib/demo.so"
    retries: int = 3
    enabled: bool = False
    ratio: float = 0.5
    names: tuple[str, ...] = ()
    pin_file: Path | None = None


def write(tmp_path, text):
    path = tmp_path / "scm.toml"
    path.write_text(text)
    return path


def test_defaults_when_nothing_is_set(tmp_path):
    settings = load_settings(environ={}, overrides={"state_dir": tmp_path})
    assert settings.section("demo", DemoSettings) == DemoSettings()
    assert settings.log_level == "warning"


def test_file_then_environment_then_flags(tmp_path):
    path = write(
        tmp_path,
        'state_dir = "/from/file"\nlog_level = "info"\n'
        '[demo]\nretries = 5\nratio = 1\nnames = ["a", "b"]\npin_file = "/etc/pin"\n',
    )
    env = {"SCM_DEMO_RETRIES": "7", "SCM_DEMO_ENABLED": "yes", "SCM_STATE_DIR": "/from/env"}
    settings = load_settings(path, environ=env)
    demo = settings.section("demo", DemoSettings)
    assert demo == DemoSettings(
        retries=7, enabled=True, ratio=1.0, names=("a", "b"), pin_file=Path("/etc/pin")
    )
    assert settings.state_dir == Path("/from/env")
    assert settings.log_level == "info"
    flagged = load_settings(path, environ=env, overrides={"state_dir": "/from/flag"})
    assert flagged.state_dir == Path("/from/flag")


def test_config_file_from_environment(tmp_path):
    path = write(tmp_path, 'log_level = "error"\n')
    assert load_settings(environ={"SCM_CONFIG": str(path)}).log_level == "error"


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("[demo]\nretry = 1\n", {}, "unknown setting demo.retry"),
        ("[demo]\nretries = 'x'\n", {}, "demo.retries must be int"),
        ("[demo]\nretries = true\n", {}, "must be an integer, not a boolean"),
        ("", {"SCM_DEMO_RETRIES": "many"}, "SCM_DEMO_RETRIES='many' is not a valid int"),
        ("", {"SCM_DEMO_ENABLED": "perhaps"}, "is not a valid bool"),
        ("[demo\n", {}, "is not valid TOML"),
        ("colour = 1\n", {}, "unknown setting colour"),
    ],
)
def test_bad_settings_name_the_culprit(tmp_path, text, env, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message):
        load_settings(path, environ=env).section("demo", DemoSettings)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_bad_log_level(tmp_path):
    with pytest.raises(ConfigError, match="log level"):
        load_settings(environ={"SCM_LOG_LEVEL": "loud"})
