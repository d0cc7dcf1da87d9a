"""Settings precedence: defaults, then the TOML file, then SCM_* variables, then flags."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from scm.config import KNOWN_TABLES, load_settings
from scm.errors import ConfigError


@dataclass(frozen=True)
class DemoSettings:
    module: str = "/usr/lib/demo.so"
    retries: int = 3
    enabled: bool = False
    ratio: float = 0.5
    names: tuple[str, ...] = ()
    pin_file: Path | None = None
    uids: tuple[int, ...] = ()


TABLES = KNOWN_TABLES | {"demo"}


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
    settings = load_settings(path, environ=env, known_tables=TABLES)
    demo = settings.section("demo", DemoSettings)
    assert demo == DemoSettings(
        retries=7, enabled=True, ratio=1.0, names=("a", "b"), pin_file=Path("/etc/pin")
    )
    assert settings.state_dir == Path("/from/env")
    assert settings.log_level == "info"
    flagged = load_settings(
        path, environ=env, overrides={"state_dir": "/from/flag"}, known_tables=TABLES
    )
    assert flagged.state_dir == Path("/from/flag")


def test_config_file_from_environment(tmp_path):
    path = write(tmp_path, 'log_level = "error"\n')
    assert load_settings(environ={"SCM_CONFIG": str(path)}).log_level == "error"


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("[demo]\nretry = 1\n", {}, "unknown setting demo.retry"),
        ("[demo]\nretries = 'x'\n", {}, "demo.retries must be an integer, got a string"),
        ("[demo]\nretries = true\n", {}, "must be an integer, not a boolean"),
        ("", {"SCM_DEMO_RETRIES": "many"}, "SCM_DEMO_RETRIES='many' is not an integer"),
        ("", {"SCM_DEMO_ENABLED": "perhaps"}, "is not a boolean"),
        ('[demo]\nuids = ["root", 5]\n', {}, r"demo.uids\[0\] must be an integer, got a string"),
        ("[demo]\nuids = [5, true]\n", {}, r"demo.uids\[1\] must be an integer, not a boolean"),
        ("[demo]\nuids = 5\n", {}, "demo.uids must be a list, got an integer"),
        ("[demo]\nnames = [1]\n", {}, r"demo.names\[0\] must be a string"),
        (
            "",
            {"SCM_DEMO_UIDS": "1000,root"},
            "SCM_DEMO_UIDS='1000,root': item 'root' is not an integer",
        ),
        ("[sdss]\nsocket = '/x'\n", {}, r"unknown table \[sdss\] \(known: attestation, ca, "),
        ("[demo\n", {}, "is not valid TOML"),
        ("colour = 1\n", {}, "unknown setting colour"),
    ],
)
def test_bad_settings_name_the_culprit(tmp_path, text, env, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message):
        load_settings(path, environ=env, known_tables=TABLES).section("demo", DemoSettings)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_bad_log_level(tmp_path):
    with pytest.raises(ConfigError, match="log level"):
        load_settings(environ={"SCM_LOG_LEVEL": "loud"})


def test_tuple_of_int_from_the_environment_is_ints(tmp_path):
    env = {"SCM_DEMO_UIDS": "1000, 0", "SCM_DEMO_NAMES": "a,b"}
    demo = load_settings(environ=env, known_tables=TABLES).section("demo", DemoSettings)
    assert demo.uids == (1000, 0)
    assert demo.names == ("a", "b")


def test_sds_allow_list_from_the_environment_admits_those_uids(tmp_path):
    from scm.sds.daemon import SdsSettings

    settings = load_settings(environ={"SCM_SDS_ALLOWED_UIDS": "1000,0"})
    assert settings.section("sds", SdsSettings).allowed_uids == (1000, 0)


def test_every_table_a_domain_reads_is_known():
    source = Path(__file__).parents[2] / "src" / "scm"
    used = {
        match
        for path in source.rglob("*.py")
        for match in re.findall(r'\.section\(\s*"([a-z_]+)"', path.read_text())
    }
    assert used and used <= KNOWN_TABLES, used - KNOWN_TABLES
