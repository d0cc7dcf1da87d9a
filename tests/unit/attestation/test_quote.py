"""Parsing real SGX v3 and TDX v4/v5 quotes, and rejecting malformed ones with an offset."""

from __future__ import annotations

import struct

import pytest
from cryptography import x509

from scm.attestation import EnclaveReport, QuoteFormatError, TdReport, parse_quote
from scm.attestation.pck import pck_extension
from scm.attestation.quote import MAX_QUOTE_BYTES
from tests.attestation_cases import case, case_names


@pytest.mark.parametrize("name", case_names())
def test_real_quote_fields_match_the_manifest(name: str) -> None:
    c = case(name)
    quote = parse_quote(c.quote)
    assert quote.header.version == c.entry["version"]
    assert quote.header.tee_type == int(c.entry["tee_type"], 16)
    assert quote.report.report_data.hex() == c.entry["report_data_hex"]
    expected_report = {
        "SgxEnclaveReport": EnclaveReport,
        "TdReport10": TdReport,
        "TdReport15": TdReport,
    }
    assert isinstance(quote.report, expected_report[c.entry["report"]])
    if isinstance(quote.report, TdReport):
        assert (quote.report.mr_servicetd is not None) == (c.entry["report"] == "TdReport15")
    # The signed region is header + body; padding after the signature data is not part of it.
    assert quote.signed_length in (48 + 384, 48 + 584, 48 + 6 + 648)
    assert quote.length <= len(c.quote)


@pytest.mark.parametrize("name", case_names())
def test_pck_certificate_names_the_manifest_fmspc_and_ca(name: str) -> None:
    c = case(name)
    quote = parse_quote(c.quote)
    leaf = x509.load_pem_x509_certificates(quote.pck_chain_pem)[0]
    assert pck_extension(leaf).fmspc.hex().upper() == c.entry["fmspc"].upper()
    issuer = leaf.issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert c.entry["ca"] in str(issuer).lower()


def test_padding_after_the_signature_data_is_ignored() -> None:
    raw = case("tdx_v4_outofdate").quote
    quote = parse_quote(raw)
    assert quote.length < len(raw)  # this quote is zero-padded to 8000 bytes
    assert parse_quote(raw[: quote.length]).report == quote.report


@pytest.mark.parametrize(
    "name", ["sgx_v3_debug_enclave", "tdx_v4_uptodate", "tdx_v5_td15_uptodate"]
)
def test_every_truncation_is_rejected_with_an_offset_inside_the_quote(name: str) -> None:
    raw = parse_quote(case(name).quote).raw
    used = parse_quote(raw).length
    for cut in range(0, used, 97):
        with pytest.raises(QuoteFormatError) as err:
            parse_quote(raw[:cut])
        assert 0 <= err.value.offset <= cut
        assert err.value.reason


def _patched(raw: bytes, offset: int, fmt: str, value: int) -> bytes:
    data = bytearray(raw)
    struct.pack_into(fmt, data, offset, value)
    return bytes(data)


def test_unknown_version_is_rejected_at_offset_zero() -> None:
    with pytest.raises(QuoteFormatError, match="version 7") as err:
        parse_quote(_patched(case("tdx_v4_uptodate").quote, 0, "<H", 7))
    assert err.value.offset == 0


def test_non_ecdsa_attestation_key_is_rejected() -> None:
    with pytest.raises(QuoteFormatError, match="attestation key type 3"):
        parse_quote(_patched(case("tdx_v4_uptodate").quote, 2, "<H", 3))


def test_signature_length_pointing_past_the_end_is_rejected() -> None:
    raw = case("tdx_v4_uptodate").quote
    with pytest.raises(QuoteFormatError, match="signature data declares") as err:
        parse_quote(_patched(raw, 48 + 584, "<I", 0xFFFFFFF0))
    assert err.value.offset == 48 + 584 + 4


def test_v5_body_size_must_fit_the_body_type() -> None:
    raw = case("tdx_v5_td15_uptodate").quote
    with pytest.raises(QuoteFormatError, match="needs 648 bytes") as err:
        parse_quote(_patched(raw, 50, "<I", 584))
    assert err.value.offset == 50
    with pytest.raises(QuoteFormatError, match="unknown body type 9"):
        parse_quote(_patched(raw, 48, "<H", 9))


def test_oversized_quote_is_rejected_before_parsing() -> None:
    raw = case("tdx_v4_uptodate").quote
    with pytest.raises(QuoteFormatError, match="limit"):
        parse_quote(raw + bytes(MAX_QUOTE_BYTES))


def test_sgx_v3_exposes_enclave_identity() -> None:
    quote = parse_quote(case("sgx_v3_debug_enclave").quote)
    report = quote.report
    assert isinstance(report, EnclaveReport)
    assert report.debug
    assert len(report.mr_enclave) == len(report.mr_signer) == 32
    assert not parse_quote(case("sgx_v3_processor_cfg_swhardening").quote).report.debug
