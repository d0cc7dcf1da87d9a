"""Property tests: no input crashes the parser or verifier; the signed region is tamper-evident."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scm.attestation import QuoteFormatError, parse_quote, verify
from tests.attestation_cases import case, case_names, cases

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _parse_or_reject(data: bytes) -> None:
    try:
        parse_quote(data)
    except QuoteFormatError as exc:
        assert exc.offset >= 0 and exc.reason


@FAST
@given(st.binary(max_size=6000))
def test_random_bytes_never_crash_the_parser(data: bytes) -> None:
    _parse_or_reject(data)


@FAST
@given(
    name=st.sampled_from(case_names()),
    edits=st.lists(st.tuples(st.integers(0, 8000), st.integers(0, 255)), min_size=1, max_size=8),
    cut=st.integers(0, 8000),
)
def test_mutated_real_quotes_parse_or_reject_and_verify_without_crashing(
    name: str, edits: list[tuple[int, int]], cut: int
) -> None:
    c = case(name)
    data = bytearray(c.quote)
    for position, value in edits:
        data[position % len(data)] = value
    mutated = bytes(data[: max(cut, 1)])
    _parse_or_reject(mutated)
    verdict = verify(mutated, c.collateral, c.verify_at)
    assert verdict.ok or verdict.reason


def _verifiable_cases() -> list[str]:
    return [
        c.name for c in cases() if verify(c.quote, c.collateral, c.verify_at, allow_debug=True).ok
    ]


@pytest.mark.parametrize("name", _verifiable_cases())
def test_flipping_any_byte_of_the_signed_region_fails_verification(name: str) -> None:
    c = case(name)
    collateral = c.collateral
    signed_length = parse_quote(c.quote).signed_length
    for position in range(signed_length):  # every byte, not a sample
        data = bytearray(c.quote)
        data[position] ^= 0xFF
        verdict = verify(bytes(data), collateral, c.verify_at, allow_debug=True)
        assert not verdict.ok, f"flipping byte {position} went unnoticed"


@FAST
@given(name=st.sampled_from(_verifiable_cases()), position=st.integers(0), mask=st.integers(1, 255))
def test_any_bit_pattern_in_the_signed_region_fails_verification(
    name: str, position: int, mask: int
) -> None:
    c = case(name)
    data = bytearray(c.quote)
    data[position % parse_quote(c.quote).signed_length] ^= mask
    assert not verify(bytes(data), c.collateral, c.verify_at, allow_debug=True).ok


def test_every_character_of_the_pck_certificate_changed_is_rejected_not_a_crash() -> None:
    """A forged PCK certificate can hold fields that do not even parse (hypothesis found a
    subject with a private-class ASN.1 tag); verification must reject it, never raise."""
    c = case(case_names()[0])
    begin = c.quote.index(b"-----BEGIN CERTIFICATE-----\n") + len(b"-----BEGIN CERTIFICATE-----\n")
    end = c.quote.index(b"-----END CERTIFICATE-----", begin)
    for position in range(begin, end):
        if c.quote[position] == ord("\n"):
            continue
        data = bytearray(c.quote)
        data[position] = ord("B") if data[position] == ord("A") else ord("A")
        verdict = verify(bytes(data), c.collateral, c.verify_at)
        assert not verdict.ok and verdict.reason, position
