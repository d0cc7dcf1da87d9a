"""The webhook's metrics, kept as plain numbers, read as Prometheus metrics when scraped."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest

from scm.kube.webhook.server import LATENCY_BUCKETS, WebhookMetrics


def scrape(registry: CollectorRegistry) -> list[str]:
    return generate_latest(registry).decode().splitlines()


def test_outcomes_are_counted_per_label_and_latency_buckets_are_cumulative() -> None:
    registry = CollectorRegistry()
    metrics = WebhookMetrics(registry)
    for outcome in ("patched", "patched", "denied"):
        metrics.count(outcome)
    # A bucket counts reviews up to and including its bound; 1 s is past every bound.
    for seconds in (LATENCY_BUCKETS[0], 0.0007, 1.0):
        metrics.observe(seconds)
    lines = scrape(registry)
    assert 'scm_webhook_reviews_total{outcome="patched"} 2.0' in lines
    assert 'scm_webhook_reviews_total{outcome="denied"} 1.0' in lines
    assert 'scm_webhook_review_seconds_bucket{le="0.0005"} 1.0' in lines
    assert 'scm_webhook_review_seconds_bucket{le="0.001"} 2.0' in lines
    assert 'scm_webhook_review_seconds_bucket{le="0.25"} 2.0' in lines
    assert 'scm_webhook_review_seconds_bucket{le="+Inf"} 3.0' in lines
    assert "scm_webhook_review_seconds_count 3.0" in lines
    assert "scm_webhook_review_seconds_sum 1.0012" in lines


def test_nothing_counted_yet_exposes_an_empty_histogram() -> None:
    lines = scrape(WebhookMetrics(CollectorRegistry()).registry)
    assert "scm_webhook_review_seconds_count 0.0" in lines
    assert not any(line.startswith("scm_webhook_reviews_total{") for line in lines)
