"""What every subcommand receives: the global options and the resolved settings."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # `scm inspect` loads neither pathlib nor the settings model
    from pathlib import Path

    from scm.config import Settings


class CliContext:
    """Global options; settings are resolved on first use so --help never reads files.

    A plain class rather than a dataclass: every `scm` run makes one, and defining a
    dataclass costs about a millisecond of start-up.
    """

    def __init__(
        self,
        debug: bool = False,
        config_file: Path | None = None,
        state_dir: Path | None = None,
        log_level: str | None = None,
    ) -> None:
        self.debug = debug
        self.config_file = config_file
        self.state_dir = state_dir
        self.log_level = log_level

    @cached_property
    def settings(self) -> Settings:
        from scm.config import load_settings

        return load_settings(self.config_file, overrides=self._overrides())

    def check_settings(self) -> None:
        """Fail as reading :attr:`settings` would, for commands that read no settings."""
        from scm.settings_sources import read_sources

        read_sources(self.config_file, overrides=self._overrides())

    def _overrides(self) -> dict[str, object]:
        level = "debug" if self.debug and not self.log_level else self.log_level
        return {"state_dir": self.state_dir, "log_level": level}


pass_cli = click.make_pass_decorator(CliContext, ensure=True)
