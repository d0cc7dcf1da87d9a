"""Prometheus metrics summed over several processes (an SDS server and its workers).

Each process snapshots its own registry as plain data (:func:`snapshot`); the process
that serves ``/metrics`` exposes :class:`SummedCollector`, which adds up samples with
the same name and labels. Counters and gauges of SDS streams add up meaningfully (open
streams, pushes, ACKs, refusals); gauges that only one process reports (issuance health,
certificate expiry) pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

# (family name, type, help, [(sample name, labels, value)])
Family = tuple[str, str, str, list[tuple[str, dict[str, str], float]]]


def snapshot(registry: CollectorRegistry, skip: frozenset[str] = frozenset()) -> list[Family]:
    """``registry``'s samples as plain data, without families named in ``skip``."""
    families: list[Family] = []
    for metric in registry.collect():
        if metric.name in skip:
            continue
        samples = [
            (s.name, dict(s.labels), float(s.value))
            for s in metric.samples
            if not s.name.endswith("_created")  # a sum of creation times means nothing
        ]
        families.append((metric.name, metric.type, metric.documentation, samples))
    return families


class SummedCollector(Collector):
    """The sum of the snapshots ``sources`` returns at scrape time."""

    def __init__(self, sources: Callable[[], Iterable[list[Family]]]) -> None:
        self._sources = sources

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, tuple[str, str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]]
        merged = {}
        for families in self._sources():
            for name, kind, documentation, samples in families:
                _, _, sums = merged.setdefault(name, (kind, documentation, {}))
                for sample_name, labels, value in samples:
                    key = (sample_name, tuple(sorted(labels.items())))
                    sums[key] = sums.get(key, 0.0) + value
        for name, (kind, documentation, sums) in merged.items():
            metric = Metric(name, documentation, kind)
            for (sample_name, label_pairs), value in sums.items():
                metric.add_sample(sample_name, dict(label_pairs), value)
            yield metric


def summed_registry(sources: Callable[[], Iterable[list[Family]]]) -> CollectorRegistry:
    """A registry exposing the sum of ``sources``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SummedCollector(sources))
    return registry
