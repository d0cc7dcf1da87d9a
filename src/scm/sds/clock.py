"""Time as issuance and renewal see it, so tests can drive it instead of sleeping.

:class:`SystemClock` is the real one. Tests pass a clock whose ``sleep`` advances its
``now`` at once, so renewal times, backoff delays and key retirement are checked
without waiting for certificate lifetimes.
"""

from __future__ import annotations

import asyncio
import datetime
from typing import Protocol


class Clock(Protocol):
    """What issuance and renewal need of time: the current UTC time and a sleep."""

    def now(self) -> datetime.datetime:
        """The current time, timezone-aware UTC."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (a cancellation point)."""
        ...


class SystemClock:
    """The wall clock and asyncio's sleep."""

    def now(self) -> datetime.datetime:
        return datetime.datetime.now(datetime.UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def sleep_until(clock: Clock, moment: datetime.datetime) -> None:
    """Sleep on ``clock`` until ``moment`` (at once if it has passed)."""
    seconds = (moment - clock.now()).total_seconds()
    if seconds > 0:
        await clock.sleep(seconds)
