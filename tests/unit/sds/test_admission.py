"""Admission decisions, the refusal log's pacing and the gate's HTTP/2 refusal encoding."""

from __future__ import annotations

import grpc
import hpack
import pytest

from scm.sds.admission import (
    NOT_ALLOWED,
    TOO_MANY_CONNECTIONS,
    TOO_MANY_FOR_UID,
    AdmissionLimits,
    ConnectionCounts,
    RefusalLog,
    RefusalPacer,
    connection_cap,
)
from scm.sds.refusal import hpack_integer, percent_encoded, trailers_only


def test_admission_checks_allow_list_then_total_then_per_uid() -> None:
    limits = AdmissionLimits(allowed_uids=frozenset({1, 2}), max_connections_per_uid=2)
    counts = ConnectionCounts(limits, cap=3)
    assert counts.refusal(3) == NOT_ALLOWED
    counts.opened(1)
    counts.opened(1)
    assert counts.refusal(1) == TOO_MANY_FOR_UID
    assert counts.refusal(2) is None
    counts.opened(2)
    assert counts.refusal(2) == TOO_MANY_CONNECTIONS
    counts.closed(1)
    counts.closed(1)
    assert counts.refusal(1) is None and counts.per_uid == {2: 1}


def test_the_connection_cap_stays_within_the_descriptor_budget() -> None:
    assert connection_cap(0, budget=3000, per_connection=3) == 1000
    assert connection_cap(500, budget=3000, per_connection=3) == 500
    assert connection_cap(5000, budget=3000, per_connection=1) == 3000


def test_refusals_are_logged_once_per_peer_and_reason_per_minute() -> None:
    now = [0.0]
    log = RefusalLog(lambda: now[0])
    assert log.should_log("uid 5", NOT_ALLOWED)
    assert not log.should_log("uid 5", NOT_ALLOWED)
    assert log.should_log("uid 5", TOO_MANY_FOR_UID)
    assert log.should_log("uid 6", NOT_ALLOWED)
    now[0] = 59.9
    assert not log.should_log("uid 5", NOT_ALLOWED)
    now[0] = 60.0
    assert log.should_log("uid 5", NOT_ALLOWED)


def test_the_refusal_log_forgets_quiet_peers_and_stays_bounded() -> None:
    now = [0.0]
    log = RefusalLog(lambda: now[0])
    for uid in range(RefusalLog.MAX_REMEMBERED):
        assert log.should_log(f"uid {uid}", NOT_ALLOWED)
    assert not log.should_log("one too many", NOT_ALLOWED)  # full: counted, not logged
    now[0] = 61.0
    assert log.should_log("one too many", NOT_ALLOWED)  # the quiet ones were forgotten
    assert len(log._last) == 1


@pytest.mark.parametrize(("value", "bits"), [(0, 7), (126, 7), (127, 7), (1337, 5), (70_000, 7)])
def test_hpack_integers_follow_rfc_7541(value: int, bits: int) -> None:
    encoded = hpack_integer(value, bits)
    # decode by the RFC's algorithm
    limit = (1 << bits) - 1
    decoded = encoded[0] & limit
    if decoded == limit:
        shift = 0
        for byte in encoded[1:]:
            decoded += (byte & 0x7F) << shift
            shift += 7
    assert decoded == value


def test_the_refusal_headers_decode_with_a_real_hpack_decoder() -> None:
    message = "uid 5 is not allowed: 100% refused\n" + "x" * 300
    block = trailers_only(grpc.StatusCode.PERMISSION_DENIED, message)
    headers = dict(hpack.Decoder().decode(block))
    assert headers == {
        ":status": "200",
        "content-type": "application/grpc",
        "grpc-status": "7",
        "grpc-message": percent_encoded(message),
    }
    assert "%25" in headers["grpc-message"] and "%0A" in headers["grpc-message"]


def test_the_pacer_stops_accepting_for_the_rest_of_a_second_past_its_budget() -> None:
    now = [10.0]
    pacer = RefusalPacer(3, lambda: now[0])
    assert pacer.refused() == 0.0
    now[0] = 10.25
    assert pacer.refused() == 0.0
    assert pacer.refused() == pytest.approx(0.75)  # third refusal: pause until 11.0
    now[0] = 11.0
    assert pacer.refused() == 0.0  # a new second, a new budget
