"""The Intel SGX extension of PCK certificates: FMSPC, PCE ID and the platform's TCB.

The extension (OID 1.2.840.113741.1.13.1) is a DER ``SEQUENCE OF SEQUENCE { OID, value }``.
It is found in the certificate's signed TBS bytes by :mod:`scm.attestation.der` (asking
`cryptography` for ``extensions`` would decode every extension into Python objects first), and
this module reads the few DER shapes it uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cryptography import x509

from scm.attestation import der
from scm.attestation.errors import CollateralError

SGX_EXTENSION_OID = x509.ObjectIdentifier("1.2.840.113741.1.13.1")
_OID_PREFIX = bytes.fromhex("2a864886f84d010d01")  # DER body of 1.2.840.113741.1.13.1
# Top-level fields are 1.2.840.113741.1.13.1.N; TCB components 1.2.840.113741.1.13.1.2.N.
_PREFIXES = frozenset({_OID_PREFIX, _OID_PREFIX + b"\x02"})
_TCB = 2
_PCE_ID = 3
_FMSPC = 4
_PCESVN = 17
_CPUSVN = 18


def _svn_entry(arc: int) -> bytes:
    """DER of ``SEQUENCE { OID 1.2.840.113741.1.13.1.2.<arc>, INTEGER 0..255 }``, value captured.

    An INTEGER below 0x80 has one content byte; from 0x80 to 0xFF two (00, value).
    """
    oid = rb"\x06\x0b" + re.escape(_OID_PREFIX + bytes((_TCB, arc)))
    return (
        rb"(?:\x30\x10"
        + oid
        + rb"\x02\x01([\x00-\x7f])|\x30\x11"
        + oid
        + rb"\x02\x02\x00([\x80-\xff]))"
    )


# The TCB field's content as Intel's PCK certificates lay it out: components 1-16 and the PCE
# SVN (one byte each), then the 16-byte CPU SVN.
_TCB_AS_INTEL_WRITES_IT = re.compile(
    b"".join(_svn_entry(arc) for arc in range(1, _PCESVN + 1))
    + rb"\x30\x1f\x06\x0b"
    + re.escape(_OID_PREFIX + bytes((_TCB, _CPUSVN)))
    + rb"\x04\x10(.{16})",
    re.DOTALL,
)


def _field(arc: int) -> bytes:
    """The OID element of top-level field 1.2.840.113741.1.13.1.<arc>."""
    return rb"\x06\x0a" + re.escape(_OID_PREFIX + bytes((arc,)))


# The whole extension as Intel lays it out: PPID, TCB, PCE ID, FMSPC, SGX type and, in
# certificates of the Platform CA, the platform instance ID and configuration. The part before
# the TCB's content is of fixed size; the TCB's declared length says where the rest starts.
_HEAD_AS_INTEL_WRITES_IT = re.compile(
    rb"\x30\x82(..)"
    + (rb"\x30\x1e" + _field(1) + rb"\x04\x10.{16}")
    + (rb"\x30\x82(..)" + _field(_TCB) + rb"\x30\x82(..)"),
    re.DOTALL,
)
_TAIL_AS_INTEL_WRITES_IT = re.compile(
    (rb"\x30\x10" + _field(_PCE_ID) + rb"\x04\x02(..)")
    + (rb"\x30\x14" + _field(_FMSPC) + rb"\x04\x06(.{6})")
    + (rb"\x30\x0f" + _field(5) + rb"\x0a\x01.")
    + (rb"(?:\x30\x1e" + _field(6) + rb"\x04\x10.{16}")
    + (rb"\x30([\x00-\x7f])" + _field(7) + rb"\x30([\x00-\x7f])(.*))?"),
    re.DOTALL,
)


@dataclass(frozen=True)
class PckExtension:
    """What a PCK certificate says about the platform it was issued to."""

    fmspc: bytes
    pce_id: bytes
    pce_svn: int
    sgx_tcb_components: tuple[int, ...]  # 16 SVNs
    cpu_svn: bytes


def pck_extension(cert: x509.Certificate) -> PckExtension:
    """Read the SGX extension of a PCK certificate."""
    return sgx_extension(cert.tbs_certificate_bytes)


def sgx_extension(tbs: bytes, names: der.SignedNames | None = None) -> PckExtension:
    """Read the SGX extension from a PCK certificate's TBSCertificate DER.

    ``names`` is :func:`scm.attestation.der.certificate_names` of ``tbs``, when known.
    """
    try:
        data = der.extension_value(tbs, _OID_PREFIX, names)
    except (IndexError, ValueError) as exc:
        raise CollateralError(f"PCK certificate's extensions are malformed: {exc}") from None
    if data is None:
        raise CollateralError("PCK certificate has no Intel SGX extension")
    try:
        return read_as_intel_writes_it(data) or read_any_layout(data)
    except (KeyError, IndexError, ValueError) as exc:
        raise CollateralError(f"PCK certificate's SGX extension is malformed: {exc}") from None


def read_as_intel_writes_it(data: bytes) -> PckExtension | None:
    """The extension's values when it has the layout of Intel's PCK certificates, else None.

    Three regular-expression matches in C (the head, the TCB, the tail), placed by the lengths
    the DER declares, which are checked against what matched: anything else (or any doubt) is
    left to :func:`read_any_layout`.
    """
    head = _HEAD_AS_INTEL_WRITES_IT.match(data)
    if not head:
        return None
    length, entry, tcb_length = (int.from_bytes(value, "big") for value in head.groups())
    tcb_end = head.end() + tcb_length
    tail = _TAIL_AS_INTEL_WRITES_IT.fullmatch(data, tcb_end)
    if not tail or length != len(data) - 4 or entry != 16 + tcb_length:
        return None
    pce_id, fmspc, config, config_value, rest = tail.groups()
    if config is not None and not config[0] == 14 + config_value[0] == 14 + len(rest):
        return None
    tcb = data[head.end() : tcb_end]
    svns = _TCB_AS_INTEL_WRITES_IT.fullmatch(tcb)
    if not svns:
        return None
    found = svns.groups()
    values = [(short or long)[0] for short, long in zip(found[0:34:2], found[1:34:2], strict=True)]
    return PckExtension(fmspc, pce_id, values[16], tuple(values[:16]), found[34])


def read_any_layout(data: bytes) -> PckExtension:
    """The extension's values, read field by field (any order, any DER lengths)."""
    fields = _named_fields(data, *der.only_sequence(data))
    tag, start, end = fields[_TCB]
    if tag != der.SEQUENCE:
        raise ValueError("the TCB field is not a SEQUENCE")
    tcb = _named_fields(data, start, end)
    return PckExtension(
        fmspc=_octets(data, fields[_FMSPC]),
        pce_id=_octets(data, fields[_PCE_ID]),
        pce_svn=_integer(data, tcb[_PCESVN]),
        sgx_tcb_components=tuple(_integer(data, tcb[i]) for i in range(1, 17)),
        cpu_svn=_octets(data, tcb[_CPUSVN]),
    )


def _named_fields(data: bytes, pos: int, end: int) -> dict[int, der.Span]:
    """Map the last arc of each ``SEQUENCE { Intel SGX OID, value }`` to its value's span.

    Every entry is short (under 128 bytes) and its OID is 10 or 11 bytes: those two headers
    are read in place, which halves the cost of the 25 entries a PCK certificate has.
    """
    fields: dict[int, der.Span] = {}
    while pos < end:
        if data[pos] != der.SEQUENCE:
            raise ValueError("expected a SEQUENCE")
        length = data[pos + 1]
        if length & 0x80:
            _, start, stop = der.header(data, pos, end)
        else:
            start, stop = pos + 2, pos + 2 + length
            if stop > end:
                raise ValueError("element runs past its container")
        oid_end = start + 2 + data[start + 1]
        if (
            data[start] != der.OID
            or oid_end > stop
            or data[start + 2 : oid_end - 1] not in _PREFIXES
        ):
            raise ValueError("expected an Intel SGX OID and a value")
        value = der.header(data, oid_end, stop)
        if value[2] != stop:
            raise ValueError("expected an Intel SGX OID and a value")
        fields[data[oid_end - 1]] = value
        pos = stop
    return fields


def _integer(data: bytes, span: der.Span) -> int:
    tag, start, end = span
    if tag != 0x02:
        raise ValueError("expected an INTEGER")
    return int.from_bytes(data[start:end], "big", signed=False)


def _octets(data: bytes, span: der.Span) -> bytes:
    tag, start, end = span
    if tag != 0x04:
        raise ValueError("expected an OCTET STRING")
    return data[start:end]
