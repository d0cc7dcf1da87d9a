"""Revocation lookups on the real CRLs of a case: the same answer on the first lookup (a scan
in cryptography) and on every later one (a set built on the second)."""

from __future__ import annotations

from cryptography import x509

from scm.attestation import parse_quote
from scm.attestation.chains import RevocationLists, verified_crls
from tests.attestation_cases import case

NAME = "tdx_v4_uptodate"  # its PCK CRL lists 44 revoked certificates


def _lists() -> RevocationLists:
    col = case(NAME).collateral
    verified_crls.cache_clear()
    return verified_crls(col.root_ca_crl, col.pck_crl, col.pck_crl_issuer_chain)


def test_listed_serials_are_revoked_on_first_and_later_lookups() -> None:
    listed = [
        entry.serial_number for entry in x509.load_der_x509_crl(case(NAME).collateral.pck_crl)
    ]
    assert len(listed) == 44
    for serial in (listed[0], listed[-1]):
        lists = _lists()
        assert [lists.pck_revokes(serial) for _ in range(3)] == [True, True, True]


def test_the_quotes_own_certificates_are_not_revoked_on_first_and_later_lookups() -> None:
    leaf, ca = x509.load_pem_x509_certificates(parse_quote(case(NAME).quote).pck_chain_pem)[:2]
    lists = _lists()
    assert [lists.pck_revokes(leaf.serial_number) for _ in range(3)] == [False] * 3
    assert [lists.root_revokes(ca.serial_number) for _ in range(3)] == [False] * 3


def test_a_later_lookup_of_a_listed_serial_after_a_miss_is_revoked() -> None:
    listed = next(iter(x509.load_der_x509_crl(case(NAME).collateral.pck_crl))).serial_number
    lists = _lists()
    assert lists.pck_revokes(1) is False  # the scan
    assert lists.pck_revokes(listed) is True  # the set
    assert lists.pck_revokes(1) is False
