"""The SGX extension reader: Intel's layout through the one-call fast path, anything else
through the general DER reader, with the same values either way.

The certificates here are made by the test (not PCK certificates Intel signed): only the
reading of the extension is under test.
"""

from __future__ import annotations

import contextlib
import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scm.attestation import pck
from scm.attestation.errors import CollateralError
from tests.attestation_cases import case, case_names

ARC = bytes.fromhex("2a864886f84d010d01")  # 1.2.840.113741.1.13.1


def _tlv(tag: int, body: bytes) -> bytes:
    size = len(body)
    length = bytes((size,)) if size < 0x80 else bytes((0x82,)) + size.to_bytes(2, "big")
    return bytes((tag,)) + length + body


def _integer(value: int) -> bytes:
    body = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big")
    return _tlv(0x02, body)


def _entry(arcs: bytes, value: bytes) -> bytes:
    return _tlv(0x30, _tlv(0x06, ARC + arcs) + value)


def _extension(
    components: list[int], pce_svn: int, cpu_svn: bytes, platform_ca: bool = False
) -> bytes:
    """The SGX extension in Intel's layout (with the Platform CA's two extra fields, if asked)."""
    tcb = b"".join(_entry(bytes((2, i)), _integer(v)) for i, v in enumerate(components, 1))
    tcb += _entry(b"\x02\x11", _integer(pce_svn)) + _entry(b"\x02\x12", _tlv(0x04, cpu_svn))
    platform = (
        _entry(b"\x06", _tlv(0x04, bytes(range(16))))
        + _entry(b"\x07", _tlv(0x30, _entry(b"\x07\x01", _tlv(0x01, b"\x00"))))
        if platform_ca
        else b""
    )
    return _tlv(
        0x30,
        _entry(b"\x01", _tlv(0x04, bytes(16)))
        + _entry(b"\x02", _tlv(0x30, tcb))
        + _entry(b"\x03", _tlv(0x04, b"\x00\x00"))
        + _entry(b"\x04", _tlv(0x04, bytes.fromhex("00906ed50000")))
        + _entry(b"\x05", _tlv(0x0A, b"\x00"))
        + platform,
    )


def _certificate(extension: bytes) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not a PCK certificate")])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.840.113741.1.13.1"), extension),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )


@pytest.mark.parametrize(
    ("components", "pce_svn", "fast"),
    [
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16], 11, True),
        # 0x80 and above are 2-byte INTEGERs (00, value)
        ([0x7F, 0x80, 0xFF, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], 0x80, True),
        ([3] * 16, 300, False),  # a PCE SVN past one byte: the general reader
        ([256] + [0] * 15, 13, False),  # a component past one byte
    ],
)
@pytest.mark.parametrize("platform_ca", [False, True])
def test_fast_path_and_general_reader_give_the_same_values(
    components: list[int], pce_svn: int, fast: bool, platform_ca: bool
) -> None:
    extension = _extension(components, pce_svn, bytes(range(16)), platform_ca)
    assert (pck.read_as_intel_writes_it(extension) is not None) is fast
    if fast:
        assert pck.read_as_intel_writes_it(extension) == pck.read_any_layout(extension)
    cert = _certificate(extension)
    read = pck.pck_extension(cert)
    assert read.sgx_tcb_components == tuple(components)
    assert read.pce_svn == pce_svn
    assert read.cpu_svn == bytes(range(16))
    assert read.fmspc == bytes.fromhex("00906ed50000")
    # Whether the one-call layout applied, on the TCB field's own bytes:
    tcb_value = extension[extension.index(ARC + b"\x02") + len(ARC) + 1 :]
    _, start, end = pck.der.header(tcb_value, 0, len(tcb_value))
    assert bool(pck._TCB_AS_INTEL_WRITES_IT.fullmatch(tcb_value, start, end)) is fast


def test_a_missing_component_is_malformed() -> None:
    extension = _extension(list(range(16)), 11, bytes(16))
    first = _entry(b"\x02\x01", _integer(0))
    broken = extension.replace(first, b"")
    # the outer lengths no longer add up either way: the reader must refuse, not guess
    with pytest.raises(CollateralError):
        pck.pck_extension(_certificate(broken))


def _real_leaf_tbs() -> bytes:
    from scm.attestation import parse_quote

    pem = parse_quote(case(case_names()[0]).quote).pck_chain_pem
    return x509.load_pem_x509_certificates(pem)[0].tbs_certificate_bytes


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    edits=st.lists(st.tuples(st.integers(0), st.integers(0, 255)), min_size=1, max_size=6),
    cut=st.integers(0),
)
def test_any_damage_to_the_signed_bytes_is_a_collateral_error_or_a_reading(
    edits: list[tuple[int, int]], cut: int
) -> None:
    """The reader runs on unverified certificates too (the PCCS lookup key): it may only
    return values or raise CollateralError, never another exception."""
    tbs = bytearray(_real_leaf_tbs())
    for position, value in edits:
        tbs[position % len(tbs)] = value
    damaged = bytes(tbs[: max(1, cut % (len(tbs) + 1))])
    with contextlib.suppress(CollateralError):
        pck.sgx_extension(damaged)


@pytest.mark.parametrize("name", case_names())
def test_real_pck_certificates_take_the_fast_path_with_the_general_readers_values(
    name: str,
) -> None:
    from scm.attestation import parse_quote

    pem = parse_quote(case(name).quote).pck_chain_pem
    tbs = x509.load_pem_x509_certificates(pem)[0].tbs_certificate_bytes
    extension = pck.der.extension_value(tbs, ARC)
    assert extension is not None
    fast = pck.read_as_intel_writes_it(extension)
    assert fast is not None
    assert fast == pck.read_any_layout(extension)


def test_a_declared_length_that_does_not_add_up_leaves_the_fast_path() -> None:
    extension = bytearray(_extension(list(range(16)), 11, bytes(16)))
    extension[3] ^= 1  # the outer length
    assert pck.read_as_intel_writes_it(bytes(extension)) is None
    with pytest.raises(ValueError):
        pck.read_any_layout(bytes(extension))
