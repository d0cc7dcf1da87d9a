"""Path parameters: their values are ``pathlib.Path`` objects, made only once a path is given.

Every path option and argument of ``scm`` uses :class:`PathParam`. pathlib, with the
urllib.parse and ipaddress modules it imports, costs about 5 ms of start-up; loaded here on
the first path given, it stays out of `scm inspect`, whose path options default to None and
whose ``--root`` is text (:mod:`scm.cli.roots`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from pathlib import Path


class PathParam(click.Path["Path"]):
    """``click.Path`` with ``path_type=pathlib.Path``, importing pathlib on first use."""

    def coerce_path_result(self, value: str | os.PathLike[str]) -> Path:
        from pathlib import Path

        return Path(value)
