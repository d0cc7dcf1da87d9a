"""How issuance is going: latency, failures, the CA's reachability and the next renewal.

Shown in ``/status`` (``issuance``) and in ``/metrics`` once :meth:`register` has added
the collectors to the server's registry.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

# Cold issuance is milliseconds with the local CA; remote CAs take longer.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class IssuanceHealth:
    """Counters and the latest state of issuance for the ``/status`` document."""

    def __init__(self, now: Callable[[], datetime.datetime] | None = None) -> None:
        self._now = now or (lambda: datetime.datetime.now(datetime.UTC))
        self.latency = Histogram(
            "scm_sds_issuance_seconds",
            "Time to issue a workload certificate: key, CSR and CA signature.",
            buckets=LATENCY_BUCKETS,
            registry=None,
        )
        self.issued = Counter(
            "scm_sds_certificates_issued", "Workload certificates issued.", registry=None
        )
        self.failures = Counter(
            "scm_sds_issuance_failures",
            "Failed issuance, renewal or key retirement attempts (any cause).",
            registry=None,
        )
        self.failures_total = 0
        self.consecutive_failures = 0
        self.last_error = ""
        self.last_issued_at: datetime.datetime | None = None
        self.next_renewal: datetime.datetime | None = None
        self.next_retry: datetime.datetime | None = None

    def register(self, registry: CollectorRegistry) -> None:
        for collector in (self.latency, self.issued, self.failures):
            registry.register(collector)

    def succeeded(self, seconds: float) -> None:
        self.latency.observe(seconds)
        self.issued.inc()
        self.consecutive_failures = 0
        self.last_error = ""
        self.next_retry = None
        self.last_issued_at = self._now()

    def failed(self, error: str) -> bool:
        """Count a failure; True when its cause differs from the last one (log it then)."""
        new_cause = error != self.last_error
        self.failures.inc()
        self.failures_total += 1
        self.consecutive_failures += 1
        self.last_error = error
        return new_cause

    def retrying_in(self, seconds: float) -> None:
        self.next_retry = self._now() + datetime.timedelta(seconds=seconds)

    def status(self) -> dict[str, Any]:
        def iso(moment: datetime.datetime | None) -> str | None:
            return moment.isoformat() if moment else None

        return {
            "ca_reachable": self.consecutive_failures == 0,
            "consecutive_failures": self.consecutive_failures,
            "failures_total": self.failures_total,
            "last_error": self.last_error or None,
            "last_issued_at": iso(self.last_issued_at),
            "next_renewal": iso(self.next_renewal),
            "next_retry": iso(self.next_retry),
        }
