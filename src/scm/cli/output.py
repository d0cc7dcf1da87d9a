"""The CLI's output convention in one place: ``--format text|json`` and how each is printed.

Every command that prints data takes ``--format``; text is for people, JSON for scripts
(keys in snake_case, the same name for the same datum in every command). Both go to
standard output; diagnostics and logs go to standard error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

FORMATS = ("text", "json")


def format_option(*extra: str) -> Callable[[F], F]:
    """``--format text|json`` (plus ``extra`` formats), stored as ``output_format``."""
    return click.option(
        "--format",
        "output_format",
        type=click.Choice([*FORMATS, *extra]),
        default="text",
        show_default=True,
        help="Output for people (text) or for scripts (json).",
    )


def emit(output_format: str, document: Any, text: str | Callable[[], str]) -> None:
    """Print ``document`` as JSON, or ``text`` (a string or a function making one)."""
    if output_format == "json":
        import json  # deferred: --help and text output need no JSON (start-up time)

        click.echo(json.dumps(document, indent=2))
        return
    rendered = text() if callable(text) else text
    click.echo(rendered, nl=not rendered.endswith("\n"))


def deprecated(old: str, new: str) -> None:
    """Say on standard error that option ``old`` is kept for one release; use ``new``."""
    click.echo(f"scm: warning: {old} is deprecated and will be removed; use {new}", err=True)
