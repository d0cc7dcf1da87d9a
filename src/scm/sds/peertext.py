"""Text a peer chose (node ids, NACK messages, resource names), made safe to log.

A peer controls these strings, so logging them raw would let it forge whole log lines
(a newline and a fake "INFO ..." record) or drive a terminal with escape sequences.
They are logged only through :func:`escaped`: Python's repr, which escapes newlines,
control characters and non-printable code points, and cut to a bounded length.
"""

from __future__ import annotations

DEFAULT_LIMIT = 200


def escaped(text: str, limit: int = DEFAULT_LIMIT) -> str:
    """``text`` quoted and escaped for a log line, at most ``limit`` characters of it."""
    if len(text) > limit:
        return repr(text[:limit]) + f"...({len(text) - limit} more)"
    return repr(text)
