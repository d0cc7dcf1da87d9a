"""Durations as people write them: ``90s``, ``15m``, ``24h``, ``30d``."""

from __future__ import annotations

import datetime
import re

from scm.errors import InputError

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_PATTERN = re.compile(r"(\d+)([smhd])")


def parse_ttl(text: str) -> datetime.timedelta:
    """``24h`` as a timedelta; InputError for anything else or zero."""
    match = _PATTERN.fullmatch(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise InputError(f"invalid duration {text!r}: use a positive number and s, m, h or d")
    try:
        return datetime.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    except OverflowError:
        raise InputError(f"duration {text!r} is too long") from None
