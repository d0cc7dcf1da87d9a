"""Verification of the real quotes against real Intel collateral gives dcap-qvl's verdicts."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from scm.attestation import REASONS, Collateral, verify
from scm.attestation.quote import parse_quote
from scm.attestation.tcb import STATUSES
from tests.attestation_cases import DCAP_QVL_ERRORS, case, case_names, cases

DAY = 86400
INTEL_ROOT_X = bytes.fromhex("0ba9c4c0c0c86193")  # start of the root key's x coordinate


@pytest.mark.parametrize("name", case_names())
def test_verdict_matches_dcap_qvl(name: str) -> None:
    c = case(name)
    verdict = verify(c.quote, c.collateral, c.verify_at)
    if "error" in c.expected:
        assert not verdict.ok
        assert verdict.reason == DCAP_QVL_ERRORS[c.expected["error"]]
    else:
        assert verdict.ok, verdict.message
        assert verdict.status == c.expected["status"]
        assert list(verdict.advisory_ids) == c.expected["advisory_ids"]


@pytest.mark.parametrize("name", case_names())
def test_one_day_outside_the_validity_window_is_rejected_as_expired(name: str) -> None:
    c = case(name)
    start, end = c.window
    before = verify(c.quote, c.collateral, start - DAY)
    after = verify(c.quote, c.collateral, end + DAY)
    assert (before.reason, after.reason) == ("collateral_not_yet_valid", "collateral_expired")


def test_every_reason_code_is_documented() -> None:
    for c in cases():
        reason = verify(c.quote, c.collateral, c.verify_at).reason
        assert reason is None or reason in REASONS


def test_debug_enclave_verifies_when_debug_is_allowed() -> None:
    c = case("sgx_v3_debug_enclave")
    strict = verify(c.quote, c.collateral, c.verify_at)
    relaxed = verify(c.quote, c.collateral, c.verify_at, allow_debug=True)
    assert relaxed.ok
    assert relaxed.status == strict.status and relaxed.status in STATUSES


def _tampered_json(c_name: str, field: str, old: str, new: str) -> Collateral:
    doc = json.loads(case(c_name).collateral_json)
    assert old in doc[field]
    doc[field] = doc[field].replace(old, new, 1)
    return Collateral.from_json(json.dumps(doc))


def test_tampered_tcb_info_fails_its_signature() -> None:
    c = case("tdx_v4_uptodate")
    collateral = _tampered_json(
        c.name, "tcb_info", '"tcbStatus":"OutOfDate"', '"tcbStatus":"UpToDate"'
    )
    assert verify(c.quote, collateral, c.verify_at).reason == "tcb_info_signature_invalid"


def test_tampered_qe_identity_fails_its_signature() -> None:
    c = case("sgx_v3_processor_cfg_swhardening")
    collateral = _tampered_json(c.name, "qe_identity", '"isvprodid":1', '"isvprodid":2')
    assert verify(c.quote, collateral, c.verify_at).reason == "qe_identity_signature_invalid"


def test_collateral_of_another_platform_is_a_mismatch() -> None:
    sgx, tdx = case("sgx_v3_processor_cfg_swhardening"), case("tdx_v4_uptodate")
    # The TDX collateral comes from the platform CA: its PCK CRL cannot judge a processor PCK.
    assert verify(sgx.quote, tdx.collateral, tdx.verify_at).reason == "collateral_mismatch"


def test_fmspc_mismatch_is_reported() -> None:
    # Collateral of a TDX platform with FMSPC 90C06F000000, quote of one with B0C06F000000;
    # the quote's PCK chain is still valid at the collateral's time.
    collateral_case, quote_case = case("tdx_v5_td15_uptodate"), case("tdx_v4_uptodate")
    verdict = verify(quote_case.quote, collateral_case.collateral, collateral_case.verify_at)
    assert verdict.reason == "collateral_mismatch"
    assert "FMSPC" in verdict.message


def _self_signed_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Intel SGX Root CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime(2020, 1, 1))
        .not_valid_after(datetime(2040, 1, 1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_issuer_chain_not_rooted_in_intel_is_rejected() -> None:
    c = case("tdx_v4_uptodate")
    collateral = replace(c.collateral, tcb_info_issuer_chain=_self_signed_pem())
    assert verify(c.quote, collateral, c.verify_at).reason == "collateral_chain_invalid"


def test_corrupt_crl_is_rejected() -> None:
    c = case("tdx_v4_uptodate")
    collateral = replace(c.collateral, pck_crl=c.collateral.pck_crl[:-10])
    assert verify(c.quote, collateral, c.verify_at).reason == "crl_invalid"


def test_garbage_is_a_malformed_quote_not_a_crash() -> None:
    c = case("tdx_v4_uptodate")
    verdict = verify(b"\x04\x00\x02\x00" + bytes(100), c.collateral, c.verify_at)
    assert verdict.reason == "malformed_quote" and "byte" in verdict.message


def _pem_blocks(pem: bytes) -> list[bytes]:
    end = b"-----END CERTIFICATE-----"
    return [block.strip() + b"\n" + end + b"\n" for block in pem.split(end) if block.strip()]


def _with_chain(quote: bytes, old: bytes, new: bytes) -> bytes:
    # The PEM chain is the last field of the quote's certification data: same length keeps
    # every declared size valid.
    assert len(old) == len(new) and quote.count(old) == 1
    return quote.replace(old, new)


@pytest.mark.parametrize("order", [(1, 0, 2), (2, 1, 0), (0, 2, 1)])
def test_pck_chain_is_linked_by_subject_and_issuer_in_any_order(order: tuple[int, ...]) -> None:
    c = case("tdx_v4_uptodate")
    pem = parse_quote(c.quote).pck_chain_pem.rstrip(b"\0")
    blocks = _pem_blocks(pem)
    assert len(blocks) == 3 and b"".join(blocks) == pem
    shuffled = b"".join(blocks[i] for i in order)
    verdict = verify(_with_chain(c.quote, pem, shuffled), c.collateral, c.verify_at)
    assert verdict.ok, verdict.message
    assert verdict.status == "UpToDate"


def test_root_certificate_with_a_corrupted_key_is_a_clean_chain_rejection() -> None:
    c = case("tdx_v4_uptodate")
    pem = parse_quote(c.quote).pck_chain_pem.rstrip(b"\0")
    blocks = _pem_blocks(pem)
    der = bytearray(
        x509.load_pem_x509_certificate(blocks[2]).public_bytes(serialization.Encoding.DER)
    )
    point = der.index(bytes.fromhex("04") + INTEL_ROOT_X[:4])
    der[point + 1] ^= 0xFF  # the key's x coordinate: no longer a point on P-256
    body = base64.encodebytes(bytes(der)).replace(b"\n", b"")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    broken = b"-----BEGIN CERTIFICATE-----\n" + b"\n".join(lines) + b"\n-----END CERTIFICATE-----\n"
    assert len(broken) == len(blocks[2])
    verdict = verify(_with_chain(c.quote, blocks[2], broken), c.collateral, c.verify_at)
    assert verdict.reason == "pck_chain_invalid", verdict.message
