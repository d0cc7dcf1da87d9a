"""Renew the workload certificate before it expires and push it to every stream.

One task per server: it sleeps until the issuer's renewal time (or until an old key's
certificate has expired and the key can be deleted), issues a new key and certificate,
and puts the result in the store, which tells every stream watching ``default``. Any
failure (the CA unreachable, the token, a full or read-only state directory, a bug)
keeps the current certificate served and is retried with exponential backoff (with
jitter); the task itself never dies of it. Failures show in ``/status`` and metrics.
"""

from __future__ import annotations

import datetime
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from scm.sds.clock import Clock, sleep_until
from scm.sds.credentials import DEFAULT
from scm.sds.issuer import CertificateIssuer, IssuanceError, describe_failure
from scm.sds.store import SecretStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    """Retry delays: ``initial`` seconds, doubling up to ``maximum``, +/- 20% jitter."""

    initial: float = 1.0
    maximum: float = 60.0
    uniform: Callable[[float, float], float] = field(default=random.uniform, compare=False)

    def delay(self, failures: int) -> float:
        base = min(self.maximum, self.initial * 2.0 ** max(0, failures - 1))
        return base * self.uniform(0.8, 1.2)


class Renewer:
    """Keeps ``default`` in ``store`` renewed by ``issuer``; run it as a task."""

    def __init__(
        self,
        store: SecretStore,
        issuer: CertificateIssuer,
        backoff: Backoff | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.store = store
        self.issuer = issuer
        self.backoff = backoff or Backoff()
        self.clock = clock or issuer.clock

    async def run(self) -> None:
        await self.issuer.first_issued.wait()
        while True:
            await sleep_until(self.clock, self._next_wake())
            try:
                await self._step()
            except Exception as exc:  # never die: retry later, whatever the cause
                await self._back_off(exc)

    async def _step(self) -> None:
        await self.issuer.retire_expired()
        current = self.issuer.current
        assert current is not None  # set before first_issued
        if self.clock.now() >= self.issuer.renew_at(current):
            record = await self.issuer.issue()
            self.store.put(DEFAULT, self.issuer.credential(record))

    async def _back_off(self, exc: Exception) -> None:
        health = self.issuer.health
        if not isinstance(exc, IssuanceError):  # not counted by the issuer yet
            reason = describe_failure(exc, self.issuer.records.directory)
            if health.failed(reason):
                log.warning("renewing %s failed: %s", DEFAULT, reason)
        delay = self.backoff.delay(health.consecutive_failures)
        health.retrying_in(delay)
        log.debug("still serving the current %s certificate; retrying in %.1fs", DEFAULT, delay)
        await self.clock.sleep(delay)

    def _next_wake(self) -> datetime.datetime:
        current = self.issuer.current
        assert current is not None
        wake = self.issuer.renew_at(current)
        retirement = self.issuer.next_retirement()
        return min(wake, retirement) if retirement else wake
