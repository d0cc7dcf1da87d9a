"""Where settings come from: the TOML file and ``SCM_*`` variables, read and checked.

:func:`read_sources` reads the settings file (``--config`` or ``SCM_CONFIG``), checks its
top level and its table names, and resolves the top-level values; :mod:`scm.config` builds
the typed :class:`~scm.config.Settings` from the result. Commands that read no settings
(`scm inspect`) call only this, so a broken settings source fails them alike, without the
cost of building Settings and the pathlib objects in it.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from typing import Any

from scm.errors import ConfigError
from scm.record import Record

ENV_PREFIX = "SCM_"
LOG_LEVELS = ("debug", "info", "warning", "error")
# Every [table] a domain reads with Settings.section (tests/unit/test_config.py checks
# the sources against this list). A table not named here is a typo and an error.
KNOWN_TABLES = frozenset(
    {
        "attestation",
        "ca",
        "console",
        "image",
        "istio_ca",
        "keys",
        "kube",
        "kubernetes_ca",
        "openstack",
        "sds",
    }
)
TOP_LEVEL = ("state_dir", "log_level")


class SettingsSources(Record):
    """What the sources say: the file read, top-level values, the raw tables, the environment.

    ``state_dir`` is None when no source names one (the default applies).
    """

    config_file: str | None
    state_dir: str | None
    log_level: str
    tables: dict[str, dict[str, Any]]
    environ: dict[str, str]


def read_sources(
    config_file: os.PathLike[str] | str | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    known_tables: Collection[str] = KNOWN_TABLES,
) -> SettingsSources:
    """Read and check the settings file and the environment; ConfigError when they are wrong.

    ``overrides`` holds explicit command-line values (``state_dir``, ``log_level``);
    ``None`` values in it are ignored. A table outside ``known_tables`` is an error.
    """
    env = dict(os.environ if environ is None else environ)
    path = os.fspath(config_file) if config_file else env.get("SCM_CONFIG") or None
    document = _read_toml(path) if path else {}
    tables = {k: v for k, v in document.items() if isinstance(v, dict)}
    top = {k: v for k, v in document.items() if not isinstance(v, dict)}
    unknown = sorted(set(top) - set(TOP_LEVEL))
    if unknown:
        raise ConfigError(f"{path}: unknown setting {unknown[0]}")
    unknown = sorted(set(tables) - set(known_tables))
    if unknown:
        raise ConfigError(
            f"{path}: unknown table [{unknown[0]}] (known: {', '.join(sorted(known_tables))})"
        )

    # Later sources win: the file, then SCM_STATE_DIR / SCM_LOG_LEVEL, then the command line.
    values = {key: _text(top[key], key, str(path)) for key in TOP_LEVEL if key in top}
    for key in TOP_LEVEL:
        if env.get(ENV_PREFIX + key.upper()):
            values[key] = env[ENV_PREFIX + key.upper()]
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in TOP_LEVEL:
            raise ValueError(f"unsupported override {key!r}")
        values[key] = os.fspath(value)
    log_level = values.get("log_level", "warning").lower()
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"log level {log_level!r} is not one of {', '.join(LOG_LEVELS)}")
    return SettingsSources(path, values.get("state_dir"), log_level, tables, env)


def toml_type(value: object) -> str:
    """How a TOML value's type reads in an error message ("an integer", "a list")."""
    names = {bool: "a boolean", int: "an integer", str: "a string", float: "a number"}
    names.update({list: "a list", dict: "a table"})
    return names.get(type(value), type(value).__name__)


def _text(value: object, key: str, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {key} must be a string, got {toml_type(value)}")
    return value


def _read_toml(path: str) -> dict[str, Any]:
    import tomllib  # deferred: most runs have no settings file

    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not a UTF-8 text file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
