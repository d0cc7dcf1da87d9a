"""Prometheus metrics of one SDS server (its own registry, so servers never share counts)."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from scm.sds.store import SecretStore


class SdsMetrics:
    """Counters and gauges the server updates; ``registry`` is what /metrics exposes."""

    def __init__(self, store: SecretStore) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.streams_active = Gauge(
            "scm_sds_streams", "Open SDS streams.", ["api"], registry=self.registry
        )
        self.streams_total = Counter(
            "scm_sds_streams_opened", "SDS streams opened.", ["api"], registry=self.registry
        )
        self.requests = Counter(
            "scm_sds_requests", "Discovery requests received.", ["api"], registry=self.registry
        )
        self.acks = Counter("scm_sds_acks", "Responses ACKed.", ["api"], registry=self.registry)
        self.nacks = Counter(
            "scm_sds_nacks", "Responses NACKed by the client.", ["api"], registry=self.registry
        )
        self.pushes = Counter(
            "scm_sds_pushes", "Secrets sent to clients.", ["api"], registry=self.registry
        )
        self.rejected = Counter(
            "scm_sds_rejected",
            "Requests, streams or peers refused, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.registry.register(_ExpiryCollector(store))


class _ExpiryCollector(Collector):
    """Seconds until each stored certificate expires, computed at scrape time."""

    def __init__(self, store: SecretStore) -> None:
        self._store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "scm_sds_certificate_expiry_seconds",
            "Seconds until the earliest expiry in each secret (negative: expired).",
            labels=["name"],
        )
        now = datetime.datetime.now(datetime.UTC)
        for stored in self._store:
            family.add_metric([stored.name], (stored.value.not_after - now).total_seconds())
        yield family
