"""What every subcommand receives: the global options and the resolved settings."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import click

from scm.config import Settings, load_settings


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
        level = "debug" if self.debug and not self.log_level else self.log_level
        return load_settings(
            self.config_file, overrides={"state_dir": self.state_dir, "log_level": level}
        )


pass_cli = click.make_pass_decorator(CliContext, ensure=True)
