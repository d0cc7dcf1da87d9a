"""Which signatures each verification path checks: every one on a cold verification, once.

Speed work must not drop a check: a cold verification (every cache cleared) checks all nine
signatures of the chain of trust, and checks none twice. What each check covered is recorded
by the bytes it verified and compared with the signed parts `cryptography` reports for the
real certificates and CRLs of each case.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from scm.attestation import chains, parse_quote, trust, verify
from tests.attestation_cases import case, case_names

verify_module = importlib.import_module("scm.attestation.verify")


@pytest.fixture
def checked(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bytes]]:
    """The data of every P-256 signature check, in order."""
    seen: list[bytes] = []
    real = trust.ecdsa_verify

    def recording(key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> bool:
        seen.append(data)
        return real(key, signature, data)

    monkeypatch.setattr(trust, "ecdsa_verify", recording)
    verify_module.clear_caches()
    yield seen
    verify_module.clear_caches()


def _signed_parts(name: str) -> dict[str, bytes]:
    c = case(name)
    quote = parse_quote(c.quote)
    col = c.collateral
    leaf, pck_ca = x509.load_pem_x509_certificates(quote.pck_chain_pem)[:2]
    tcb_signer = x509.load_pem_x509_certificates(col.tcb_info_issuer_chain.encode())[0]
    return {
        "PCK certificate": leaf.tbs_certificate_bytes,
        "PCK CA certificate": pck_ca.tbs_certificate_bytes,
        "root CA CRL": x509.load_der_x509_crl(col.root_ca_crl).tbs_certlist_bytes,
        "PCK CRL": x509.load_der_x509_crl(col.pck_crl).tbs_certlist_bytes,
        "TCB signing certificate": tcb_signer.tbs_certificate_bytes,
        "TCB Info": col.tcb_info.encode(),
        "QE Identity": col.qe_identity.encode(),
        "QE report": quote.qe_report_raw,
        "quote": quote.signed,
    }


def _names(parts: dict[str, bytes], seen: list[bytes]) -> list[str]:
    by_data = {data: name for name, data in parts.items()}
    return sorted(by_data.get(data, "something else") for data in seen)


@pytest.mark.parametrize("name", case_names())
def test_cold_verification_checks_every_signature_once(name: str, checked: list[bytes]) -> None:
    c = case(name)
    parts = _signed_parts(name)
    verify(c.quote, c.collateral, c.verify_at)
    assert _names(parts, checked) == sorted(parts)


@pytest.mark.parametrize("name", case_names())
def test_a_new_platform_checks_its_own_signatures_and_the_quote(
    name: str, checked: list[bytes]
) -> None:
    c = case(name)
    parts = _signed_parts(name)
    verify(c.quote, c.collateral, c.verify_at)
    verify_module.clear_platform_caches()
    checked.clear()
    verify(c.quote, c.collateral, c.verify_at)
    assert _names(parts, checked) == ["PCK certificate", "QE report", "quote"]


@pytest.mark.parametrize("name", case_names())
def test_a_known_platform_checks_the_quote_signature_every_time(
    name: str, checked: list[bytes]
) -> None:
    c = case(name)
    parts = _signed_parts(name)
    for _ in range(3):
        verify(c.quote, c.collateral, c.verify_at)
    checked.clear()
    verify(c.quote, c.collateral, c.verify_at)
    assert _names(parts, checked) == ["quote"]


@pytest.mark.parametrize("name", case_names())
def test_a_platforms_own_certificate_is_not_kept_between_quotes(
    name: str, checked: list[bytes]
) -> None:
    """So a platform seen for the first time really is decoded and checked anew."""
    c = case(name)
    verify(c.quote, c.collateral, c.verify_at)
    kept = [cert.cert for cert in chains.CA_CERTS._items.values()]
    leaf, pck_ca = x509.load_pem_x509_certificates(parse_quote(c.quote).pck_chain_pem)[:2]
    assert pck_ca in kept
    assert leaf not in kept
