"""What crosses between an SDS server and its workers: secret values and metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from scm.sds import Credential, HsmKey, InlineKey
from scm.sds.metricsum import snapshot, summed_registry
from scm.sds.store import content_version
from scm.sds.workerlink import decode_value, encode_value
from tests.certs import TestCA


def test_every_kind_of_secret_arrives_with_the_same_content_version() -> None:
    ca = TestCA()
    inline = ca.credential()
    assert isinstance(inline.key, InlineKey)
    in_token = Credential(inline.chain, HsmKey("sds-default-1", "scm", "ec-p256"))
    for value in (inline, in_token, ca.bundle()):
        arrived = decode_value(encode_value(value))
        assert arrived is not None
        assert content_version(arrived) == content_version(value)
        assert type(arrived) is type(value)
    assert decode_value(encode_value(None)) is None  # a removed secret


def worker_registry(pushes: float, streams: float) -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("scm_sds_pushes", "", ["api"], registry=registry).labels("sotw").inc(pushes)
    Gauge("scm_sds_streams", "", ["api"], registry=registry).labels("sotw").set(streams)
    return registry


def test_metrics_are_summed_over_workers_by_name_and_labels() -> None:
    workers = [snapshot(worker_registry(3, 10)), snapshot(worker_registry(4, 5))]
    exposed = summed_registry(lambda: workers)
    assert exposed.get_sample_value("scm_sds_pushes_total", {"api": "sotw"}) == 7
    assert exposed.get_sample_value("scm_sds_streams", {"api": "sotw"}) == 15
    text = generate_latest(exposed).decode()
    assert "# TYPE scm_sds_pushes_total counter" in text
    assert "_created" not in text  # a sum of creation times would mean nothing
