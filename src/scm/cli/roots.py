"""``--root DIR``: a directory standing for a host's ``/``, checked the same way everywhere.

``inspect``, ``openstack check-host``, the ``kube`` servers, ``attest quote``, ``ca csr``
and ``console`` all read a host's files below ``--root``; one option type gives them one
check and one message (exit 66 when it is missing or not a directory).

The value is the directory as given, as text: host discovery (:mod:`scm.platform`) works on
text paths, so `scm inspect` never loads pathlib (:mod:`scm.cli.paths`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from scm.errors import NotFoundError
from scm.files import directory_problem

F = TypeVar("F", bound=Callable[..., Any])


def _checked_root(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is None or ctx.resilient_parsing:
        return value
    problem = directory_problem(value, "host root")
    if problem is not None:
        raise NotFoundError(problem)
    return value


def root_option(help: str, default: str | None = "/") -> Callable[[F], F]:
    """``--root DIR`` with ``help``; ``default`` None leaves it to the command's settings."""
    return click.option(
        "--root",
        type=click.Path(path_type=str),
        metavar="DIR",
        default=default,
        show_default=default is not None,
        callback=_checked_root,
        help=help,
    )
