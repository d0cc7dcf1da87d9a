"""Renew the workload certificate before it expires and push it to every stream.

One task per server: it sleeps until the issuer's renewal time (or until an old key's
certificate has expired and the key can be deleted), issues a new key and certificate,
and puts the result in the store, which tells every stream watching ``default``. When
the CA cannot be reached the current certificate keeps being served and the attempt is
retried with exponential backoff (with jitter), reported in ``/status`` and metrics.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import random
from dataclasses import dataclass

from scm.errors import ScmError
from scm.sds.credentials import DEFAULT
from scm.sds.issuer import CertificateIssuer
from scm.sds.store import SecretStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    """Retry delays: ``initial`` seconds, doubling up to ``maximum``, +/- 20% jitter."""

    initial: float = 1.0
    maximum: float = 60.0

    def delay(self, failures: int) -> float:
        base = min(self.maximum, self.initial * 2.0 ** max(0, failures - 1))
        return base * random.uniform(0.8, 1.2)


class Renewer:
    """Keeps ``default`` in ``store`` renewed by ``issuer``; run it as a task."""

    def __init__(
        self, store: SecretStore, issuer: CertificateIssuer, backoff: Backoff | None = None
    ) -> None:
        self.store = store
        self.issuer = issuer
        self.backoff = backoff or Backoff()

    async def run(self) -> None:
        await self.issuer.first_issued.wait()
        while True:
            await _sleep_until(self._next_wake())
            await self.issuer.retire_expired()
            current = self.issuer.current
            assert current is not None  # set before first_issued
            if _now() >= self.issuer.renew_at(current):
                await self._renew()

    def _next_wake(self) -> datetime.datetime:
        current = self.issuer.current
        assert current is not None
        wake = self.issuer.renew_at(current)
        retirement = self.issuer.next_retirement()
        return min(wake, retirement) if retirement else wake

    async def _renew(self) -> None:
        health = self.issuer.health
        try:
            record = await self.issuer.issue()
        except ScmError as exc:
            delay = self.backoff.delay(health.consecutive_failures)
            health.retrying_in(delay)
            log.warning(
                "renewing %s failed (%s); still serving the current certificate, retrying in %.1fs",
                DEFAULT,
                exc,
                delay,
            )
            await asyncio.sleep(delay)
            return
        self.store.put(DEFAULT, self.issuer.credential(record))


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


async def _sleep_until(moment: datetime.datetime) -> None:
    seconds = (moment - _now()).total_seconds()
    if seconds > 0:
        await asyncio.sleep(seconds)
