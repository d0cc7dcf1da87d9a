"""The Intel SGX extension of PCK certificates: FMSPC, PCE ID and the platform's TCB.

The extension (OID 1.2.840.113741.1.13.1) is a DER ``SEQUENCE OF SEQUENCE { OID, value }``;
`cryptography` hands it over undecoded, so this module reads the few DER shapes it uses.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from scm.attestation.errors import CollateralError

SGX_EXTENSION_OID = x509.ObjectIdentifier("1.2.840.113741.1.13.1")
_OID_PREFIX = bytes.fromhex("2a864886f84d010d01")  # DER body of 1.2.840.113741.1.13.1
_TCB = 2
_PCE_ID = 3
_FMSPC = 4
_PCESVN = 17
_CPUSVN = 18


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
    try:
        ext = cert.extensions.get_extension_for_oid(SGX_EXTENSION_OID)
    except x509.ExtensionNotFound:
        raise CollateralError("PCK certificate has no Intel SGX extension") from None
    value = ext.value
    if not isinstance(value, x509.UnrecognizedExtension):
        raise CollateralError("PCK certificate's SGX extension has an unexpected form")
    try:
        fields = _named_fields(value.value)
        tcb = _named_fields(fields[_TCB][1])
        components = tuple(_integer(tcb[i][1]) for i in range(1, 17))
        return PckExtension(
            fmspc=_octets(fields[_FMSPC]),
            pce_id=_octets(fields[_PCE_ID]),
            pce_svn=_integer(tcb[_PCESVN][1]),
            sgx_tcb_components=components,
            cpu_svn=_octets(tcb[_CPUSVN]),
        )
    except (KeyError, IndexError, ValueError) as exc:
        raise CollateralError(f"PCK certificate's SGX extension is malformed: {exc}") from None


def _tlv(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """(tag, content, next position) of the DER element at ``pos``."""
    if pos + 2 > len(data):
        raise ValueError("truncated element")
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise ValueError("bad length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise ValueError("element runs past its container")
    return tag, data[pos : pos + length], pos + length


def _children(data: bytes) -> list[tuple[int, bytes]]:
    items, pos = [], 0
    while pos < len(data):
        tag, content, pos = _tlv(data, pos)
        items.append((tag, content))
    return items


def _named_fields(data: bytes) -> dict[int, tuple[int, bytes]]:
    """Map the last arc of each ``SEQUENCE { OID, value }`` to (value tag, value content)."""
    outer = _children(data)
    if len(outer) == 1 and outer[0][0] == 0x30:
        outer = _children(outer[0][1])
    fields: dict[int, tuple[int, bytes]] = {}
    for tag, content in outer:
        if tag != 0x30:
            raise ValueError("expected a SEQUENCE")
        parts = _children(content)
        if len(parts) != 2 or parts[0][0] != 0x06 or not parts[0][1].startswith(_OID_PREFIX):
            raise ValueError("expected an Intel SGX OID and a value")
        fields[parts[0][1][-1]] = parts[1]
    return fields


def _integer(content: bytes) -> int:
    return int.from_bytes(content, "big", signed=False)


def _octets(field: tuple[int, bytes]) -> bytes:
    tag, content = field
    if tag != 0x04:
        raise ValueError("expected an OCTET STRING")
    return content
