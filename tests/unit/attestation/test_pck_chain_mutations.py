"""Quotes whose embedded PCK chain an attacker rewrote: every outcome is a malformed-input verdict.

The PCK chain is PEM inside the quote, so the interesting mutations are the ones that keep it
PEM and base64 (the certificate decodes, then its DER, keys or algorithms are wrong) as well as
raw byte changes. No mutation may end in an exception: that was "internal error" (exit 70).
"""

from __future__ import annotations

import base64
import contextlib
import re
from collections.abc import Callable

from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scm.attestation import verify
from scm.attestation.errors import CollateralError
from scm.attestation.pccs import PlatformKey
from scm.attestation.quote import parse_quote
from scm.attestation.trust import MALFORMED_CERTIFICATE_ERRORS
from scm.attestation.verdict import REASONS
from tests.attestation_cases import case, case_names

MUTATIONS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\n(.+?)-----END CERTIFICATE-----", re.DOTALL)


def _replace_der(quote: bytes, index: int, edit: Callable[[bytes], bytes]) -> bytes:
    """The quote with the DER of its ``index``-th embedded certificate passed through ``edit``."""
    matches = list(_PEM.finditer(quote))
    match = matches[index % len(matches)]
    der = base64.b64decode(b"".join(match.group(1).split()))
    edited = edit(der)
    # Same DER length, same PEM layout: the quote's own length fields stay right, so the
    # parser accepts the quote and the certificate code meets the damage.
    assert len(edited) == len(der)
    text = base64.b64encode(edited)
    body = b"".join(text[i : i + 64] + b"\n" for i in range(0, len(text), 64))
    return quote[: match.start(1)] + body + quote[match.end(1) :]


@MUTATIONS
@given(
    name=st.sampled_from(case_names()),
    index=st.integers(0, 2),
    edits=st.lists(st.tuples(st.integers(0), st.integers(0, 255)), min_size=1, max_size=6),
)
def test_mutated_pck_chain_der_is_a_malformed_input_verdict(name, index, edits):
    c = case(name)

    def edit(der: bytes) -> bytes:
        data = bytearray(der)
        for position, value in edits:
            data[position % len(data)] = value
        return bytes(data)

    _verify_and_fetch_key(_replace_der(c.quote, index, edit), c)


@MUTATIONS
@given(
    name=st.sampled_from(case_names()),
    index=st.integers(0, 2),
    start=st.integers(0),
    junk=st.binary(min_size=1, max_size=40),
)
def test_pck_chain_der_with_spliced_junk_is_a_malformed_input_verdict(name, index, start, junk):
    c = case(name)

    def edit(der: bytes) -> bytes:
        at = start % len(der)
        return (der[:at] + junk + der[at + len(junk) :])[: len(der)]

    _verify_and_fetch_key(_replace_der(c.quote, index, edit), c)


def _verify_and_fetch_key(quote: bytes, c) -> None:
    """Neither verification nor the PCCS lookup key may raise anything but a refusal.

    A mutation of the root or of an unsigned part can still verify (trust is pinned to the
    root's key); anything else is a verdict with a stable reason. When the leaf's own fields
    do not parse, the reason is the malformed-input one.
    """
    verdict = verify(quote, c.collateral, c.verify_at)
    assert verdict.ok or verdict.reason in REASONS, verdict
    with contextlib.suppress(CollateralError):
        PlatformKey.of(parse_quote(quote))
    leaf = _leaf(quote)
    if leaf is None:
        assert verdict.reason in ("malformed_quote", "pck_chain_invalid"), verdict


def _leaf(quote: bytes):
    """The PCK leaf if its key and names parse, else None."""
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificates(parse_quote(quote).pck_chain_pem)[0]
        cert.public_key()
        cert.subject.rfc4514_string()
        cert.issuer.rfc4514_string()
        return cert
    except MALFORMED_CERTIFICATE_ERRORS:
        return None


def test_a_chain_key_that_does_not_load_is_a_clean_rejection():
    """The reproduction from the issue: a chain certificate whose key is not a point on its
    curve ('Invalid key') ended in exit 70. Here it is the PCK certificate's own key: the
    edit breaks the certificate's signature, which is checked before its key is used, so it
    is a broken chain (a root whose key does not load is not Intel's root: test_verify)."""
    from cryptography import x509

    c = case(case_names()[0])
    leaf_der = base64.b64decode(b"".join(next(_PEM.finditer(c.quote)).group(1).split()))
    leaf = x509.load_der_x509_certificate(leaf_der)
    spki = leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    point = leaf_der.index(spki) + len(spki) - 64  # the EC point's x coordinate

    def edit(der: bytes) -> bytes:
        return der[:point] + bytes(31) + b"\x01" + der[point + 32 :]

    verdict = verify(_replace_der(c.quote, 0, edit), c.collateral, c.verify_at)
    assert verdict.reason == "pck_chain_invalid", verdict
    assert "PCK Certificate is not signed by" in verdict.message
