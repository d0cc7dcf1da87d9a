"""The ACK/NACK/nonce rules, without any I/O."""

from __future__ import annotations

import pytest

from scm.sds.protocol import DeltaState, ProtocolViolation, SotwState, Verdict


def test_sotw_first_request_ack_nack_and_stale() -> None:
    state = SotwState()
    assert state.on_request("", ["default"], "", None).respond
    first = state.sending("v1")
    ack = state.on_request(first, ["default"], "v1", None)
    assert (ack.verdict, ack.respond, state.acked_version) == (Verdict.ACK, False, "v1")
    second = state.sending("v2")
    assert state.on_request(first, ["default"], "v1", "late").verdict is Verdict.STALE
    nack = state.on_request(second, ["default"], "v1", "bad key")
    assert (nack.verdict, nack.respond, nack.error) == (Verdict.NACK, False, "bad key")
    assert state.acked_version == "v1"
    assert not state.needs("v2") and state.needs("v3")


def test_sotw_names_changed_under_the_current_nonce_is_a_new_subscription() -> None:
    state = SotwState()
    state.on_request("", ["default"], "", None)
    nonce = state.sending("v1")
    state.on_request(nonce, ["default"], "v1", None)
    again = state.on_request(nonce, ["default", "ROOTCA"], "v1", None)
    assert (again.verdict, again.respond) == (Verdict.REQUEST, True)
    assert state.on_request(nonce, ["default", "ROOTCA"], "v1", None).verdict is Verdict.STALE


@pytest.mark.parametrize("nonce", ["xyz", "1" * 17, "-1", "a b", "0", "01", "2", "ff"])
def test_nonces_this_stream_never_sent_are_violations(nonce: str) -> None:
    state = SotwState()
    assert state.sending("v1") == "1"
    with pytest.raises(ProtocolViolation, match="never sent"):
        state.on_request(nonce, ["default"], "", None)
    delta = DeltaState()
    delta.sending({"default": "v1"})
    with pytest.raises(ProtocolViolation, match="never sent"):
        delta.on_request(nonce, [], [], {}, None)


def test_every_nonce_a_long_stream_sent_is_still_recognised() -> None:
    state = DeltaState()
    nonces = [state.sending({"default": f"v{i}"}) for i in range(1, 300)]
    # long forgotten as outstanding, but sent: stale, not a violation
    assert state.on_request(nonces[0], [], [], {}, None)[0].verdict is Verdict.STALE
    assert state.on_request(nonces[-1], [], [], {}, None)[0].verdict is Verdict.ACK


def test_delta_tracks_versions_per_resource() -> None:
    state = DeltaState()
    _, added = state.on_request("", ["default"], [], {"default": "v0"}, None)
    assert added == {"default"} and not state.needs("default", "v0")
    nonce = state.sending({"default": "v1"})
    state.on_request(nonce, [], [], {}, None)
    assert state.acked == {"default": "v1"}
    bad = state.sending({"default": "v2"})
    nack, _ = state.on_request(bad, [], [], {}, "rejected")
    assert nack.verdict is Verdict.NACK and state.acked == {"default": "v1"}
    assert not state.needs("default", "v2")  # never re-sent
    assert state.on_request(bad, [], [], {}, None)[0].verdict is Verdict.STALE
    state.on_request("", [], ["default"], {}, None)
    assert state.subscribed == set() and state.acked == {}
