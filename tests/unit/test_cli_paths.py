"""Path options hand commands pathlib.Path values, checked as click.Path checks them."""

from __future__ import annotations

from pathlib import Path

import click
from click.testing import CliRunner

from scm.cli.paths import PathParam


@click.command()
@click.argument("source", type=PathParam(exists=True, dir_okay=False))
@click.option("--output", type=PathParam(dir_okay=False))
def show(source: Path, output: Path | None) -> None:
    click.echo(f"{type(source).__name__} {source.name} {type(output).__name__}")


def test_values_are_paths_and_an_absent_option_stays_none(tmp_path: Path) -> None:
    (tmp_path / "quote.bin").write_bytes(b"x")
    result = CliRunner().invoke(show, [str(tmp_path / "quote.bin")])
    assert result.exit_code == 0, result.output
    assert result.output == "PosixPath quote.bin NoneType\n"
    result = CliRunner().invoke(show, [str(tmp_path / "quote.bin"), "--output", "out.pem"])
    assert result.output == "PosixPath quote.bin PosixPath\n"


def test_click_path_checks_still_apply(tmp_path: Path) -> None:
    missing = CliRunner().invoke(show, [str(tmp_path / "absent")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    directory = CliRunner().invoke(show, [str(tmp_path)])
    assert directory.exit_code == 2 and "is a directory" in directory.output
