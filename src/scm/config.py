"""The one settings object: built-in defaults, a TOML file, then ``SCM_*`` variables.

Later sources win: a value in the TOML file overrides the default, an environment
variable overrides both, and explicit command-line options override everything (the
CLI passes them as ``overrides``). Reading and checking those sources is
:mod:`scm.settings_sources`; this module builds the typed settings from them.

Top-level settings live on :class:`Settings`. Each domain declares its own table as a
frozen dataclass and reads it with :meth:`Settings.section`, so this module never has
to know every domain's knobs::

    @dataclass(frozen=True)
    class KeysSettings:
        pkcs11_module: str = "/usr/lib/softhsm/libsofthsm2.so"

    keys = settings.section("keys", KeysSettings)   # [keys] table, SCM_KEYS_* variables
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from scm.errors import ConfigError
from scm.settings_sources import ENV_PREFIX, KNOWN_TABLES, LOG_LEVELS, read_sources, toml_type

__all__ = [
    "ENV_PREFIX",
    "KNOWN_TABLES",
    "LOG_LEVELS",
    "Settings",
    "default_state_dir",
    "load_settings",
]

T = TypeVar("T")


def default_state_dir() -> Path:
    """Where state lives when nothing says otherwise: /var/lib/scm for root, else XDG."""
    if os.geteuid() == 0:
        return Path("/var/lib/scm")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "scm"


@dataclass(frozen=True)
class Settings:
    """Resolved settings: top-level values plus the raw tables domains read from."""

    state_dir: Path
    log_level: str = "warning"
    config_file: Path | None = None
    tables: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    environ: Mapping[str, str] = field(default_factory=dict)

    def section(self, name: str, cls: type[T]) -> T:
        """Build the dataclass ``cls`` from defaults, table ``[name]`` and ``SCM_NAME_*``."""
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls!r} is not a dataclass")
        hints = typing.get_type_hints(cls)
        known = {f.name for f in dataclasses.fields(cls) if f.init}
        table = self.tables.get(name, {})
        unknown = sorted(set(table) - known)
        if unknown:
            raise ConfigError(
                f"{self._where()}: unknown setting {name}.{unknown[0]} "
                f"(known: {', '.join(sorted(known))})"
            )
        values: dict[str, Any] = {}
        for key, raw in table.items():
            values[key] = _coerce(raw, hints[key], f"{name}.{key}", self._where())
        prefix = f"{ENV_PREFIX}{name.upper()}_"
        for key in known:
            env_name = prefix + key.upper()
            if env_name in self.environ:
                values[key] = _coerce_env(self.environ[env_name], hints[key], env_name)
        return cast(T, cls(**values))

    def _where(self) -> str:
        return str(self.config_file) if self.config_file else "settings"


def load_settings(
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    known_tables: Collection[str] = KNOWN_TABLES,
) -> Settings:
    """The settings the sources say (:func:`~scm.settings_sources.read_sources`, which takes
    the same arguments and raises ConfigError), with defaults filled in and paths as Paths."""
    sources = read_sources(config_file, environ, overrides, known_tables)
    state_dir = Path(sources.state_dir) if sources.state_dir is not None else default_state_dir()
    return Settings(
        state_dir=state_dir.expanduser(),
        log_level=sources.log_level,
        config_file=Path(sources.config_file) if sources.config_file else None,
        tables=sources.tables,
        environ=sources.environ,
    )


def _coerce(value: Any, hint: Any, key: str, where: str) -> Any:
    """Check a TOML value against the field's type, element by element.

    Conversions are the ones TOML cannot express: str to Path, list to tuple, int to float.
    """
    kind, optional, element = _unwrap(hint)
    if value is None and optional:
        return None
    if kind is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: {key} must be a list, got {toml_type(value)}")
        if element is None:
            return tuple(value)
        return tuple(
            _coerce(item, element, f"{key}[{index}]", where) for index, item in enumerate(value)
        )
    if kind is Path and isinstance(value, str):
        return Path(value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, bool):
        raise ConfigError(f"{where}: {key} must be an integer, not a boolean")
    if isinstance(value, kind):
        return value
    raise ConfigError(f"{where}: {key} must be {_type_name(kind)}, got {toml_type(value)}")


def _coerce_env(text: str, hint: Any, name: str) -> Any:
    """Parse an environment variable's text according to the field's type.

    A tuple field takes comma-separated items, each parsed as the element type
    (``SCM_SDS_ALLOWED_UIDS=1000,0`` is ``(1000, 0)``).
    """
    kind, optional, element = _unwrap(hint)
    if optional and text == "":
        return None
    if kind is tuple:
        items = [part.strip() for part in text.split(",") if part.strip()]
        if element is None:
            return tuple(items)
        element_kind = _unwrap(element)[0]
        try:
            return tuple(_parse_scalar(item, element_kind) for item in items)
        except ValueError as exc:
            raise ConfigError(
                f"{name}={text!r}: item {exc.args[0]!r} is not {_type_name(element_kind)}"
            ) from None
    try:
        return _parse_scalar(text, kind)
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not {_type_name(kind)}") from None


def _parse_scalar(text: str, kind: type) -> Any:
    """``text`` as a ``kind``; ValueError(text) when it is not one."""
    if kind is bool:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(text)
    try:
        if kind is int:
            return int(text.strip(), 10)
        return kind(text)
    except ValueError:
        raise ValueError(text) from None


def _unwrap(hint: Any) -> tuple[type, bool, Any]:
    """(base type, optional?, element hint) for ``int``, ``Path | None``, ``tuple[str, ...]``."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        base, _, element = _unwrap(args[0])
        return base, True, element
    if origin in (tuple, list):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return tuple, False, args[0] if args else None
    return hint, False, None


def _type_name(kind: type) -> str:
    return {int: "an integer", str: "a string", bool: "a boolean", float: "a number"}.get(
        kind, kind.__name__
    )
