"""A small DER reader for the few fields verification takes from signed certificates and CRLs.

`cryptography` builds Python ``Name`` and extension objects on first access; on the cold path
that costs as much as a signature check. The names, the signature algorithm and one extension
are found here by walking the signed TBS bytes (the exact bytes the issuer signed), never
decoding more than the element headers on the way. Any violation raises ``ValueError``.
"""

from __future__ import annotations

import binascii
from typing import NamedTuple

# DER of the AlgorithmIdentifier for ecdsa-with-SHA256 (1.2.840.10045.4.3.2), no parameters:
# the only signature algorithm of Intel's SGX PKI.
ECDSA_WITH_SHA256 = bytes.fromhex("300a06082a8648ce3d040302")

SEQUENCE = 0x30
INTEGER = 0x02
OID = 0x06
BOOLEAN = 0x01
OCTET_STRING = 0x04
BIT_STRING = 0x03
_VERSION = 0xA0  # [0] EXPLICIT version of a certificate
_EXTENSIONS = 0xA3  # [3] EXPLICIT extensions of a certificate

Span = tuple[int, int, int]  # tag, start of content, end of content
_WHITESPACE = b" \t\r\n\v\f"  # what bytes.split() splits on, removed in one C call


class Signed(NamedTuple):
    """The three parts of a certificate or CRL: what was signed, how, and the signature."""

    tbs: bytes
    algorithm: bytes  # the outer AlgorithmIdentifier (not covered by the signature)
    signature: bytes  # DER ECDSA-Sig-Value, the BIT STRING's content


class SignedNames(NamedTuple):
    """What a TBSCertificate or TBSCertList says about its signature and names (raw DER)."""

    signature_algorithm: bytes
    issuer: bytes
    subject: bytes  # empty for a CRL
    spki: bytes  # the SubjectPublicKeyInfo DER (certificates; empty for a CRL)
    after_spki: int  # offset of the element after the key (certificates)
    end: int  # end of the TBS content


def header(data: bytes, pos: int, limit: int) -> Span:
    """(tag, content start, content end) of the DER element at ``pos``, inside ``limit``."""
    if pos + 2 > limit:
        raise ValueError("truncated element")
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or pos + count > limit:
            raise ValueError("bad length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > limit:
        raise ValueError("element runs past its container")
    return tag, pos, pos + length


def only_sequence(data: bytes) -> tuple[int, int]:
    """Content span of ``data`` when it is exactly one SEQUENCE."""
    tag, start, end = header(data, 0, len(data))
    if tag != SEQUENCE or end != len(data):
        raise ValueError("expected one SEQUENCE")
    return start, end


def signed_parts(data: bytes) -> Signed:
    """Split a DER certificate or CRL into its TBS bytes, algorithm and signature.

    `cryptography` re-encodes the TBS on every ``tbs_certificate_bytes`` call (about 20 us
    for a certificate, 100 us for a CRL of 40 entries); slicing the DER costs nothing.
    """
    pos, end = only_sequence(data)
    tbs_end = _sequence(data, pos, end, "the signed part")
    algorithm_end = _sequence(data, tbs_end, end, "the signature algorithm")
    tag, start, stop = header(data, algorithm_end, end)
    if tag != BIT_STRING or stop != end or start == stop or data[start] != 0:
        raise ValueError("expected the signature as the last element")
    return Signed(data[pos:tbs_end], data[tbs_end:algorithm_end], data[start + 1 : stop])


def pem_bodies(text: bytes, skip: bytes = b"", label: bytes = b"CERTIFICATE") -> list[bytes]:
    """The base64 text of every ``label`` PEM block in ``text``, whitespace removed, in order.

    A block that is byte for byte ``skip`` (BEGIN to END line) is left out; other text is
    ignored. Decode a body with :func:`base64_der`.
    """
    begin, end = b"-----BEGIN " + label + b"-----", b"-----END " + label + b"-----"
    bodies: list[bytes] = []
    pos = text.find(begin)
    while pos >= 0:
        stop = text.find(end, pos)
        if stop < 0:
            raise ValueError("a PEM block has no end line")
        if text[pos : stop + len(end)] != skip:
            bodies.append(text[pos + len(begin) : stop].translate(None, _WHITESPACE))
        pos = text.find(begin, stop)
    return bodies


def base64_der(body: bytes) -> bytes:
    """The DER a PEM body holds; ValueError when it is not strict base64."""
    try:
        return binascii.a2b_base64(body, strict_mode=True)
    except binascii.Error as exc:
        raise ValueError(f"a PEM block is not base64: {exc}") from None


def certificate_names(tbs: bytes) -> SignedNames:
    """Signature algorithm, issuer and subject of a TBSCertificate."""
    pos, end = only_sequence(tbs)
    tag, _, stop = header(tbs, pos, end)
    if tag == _VERSION:
        pos = stop
        tag, _, stop = header(tbs, pos, end)
    if tag != INTEGER:
        raise ValueError("expected the serial number")
    algorithm, issuer, pos = _algorithm_and_issuer(tbs, stop, end)
    _, _, pos = header(tbs, pos, end)  # validity
    stop = _sequence(tbs, pos, end, "the subject name")
    spki_end = _sequence(tbs, stop, end, "the public key")
    return SignedNames(algorithm, issuer, tbs[pos:stop], tbs[stop:spki_end], spki_end, end)


def crl_names(tbs: bytes) -> SignedNames:
    """Signature algorithm and issuer of a TBSCertList."""
    pos, end = only_sequence(tbs)
    tag, _, stop = header(tbs, pos, end)
    if tag == INTEGER:  # version, optional
        pos = stop
    algorithm, issuer, _ = _algorithm_and_issuer(tbs, pos, end)
    return SignedNames(algorithm, issuer, b"", b"", end, end)


def extension_value(tbs: bytes, oid: bytes, names: SignedNames | None = None) -> bytes | None:
    """The extnValue of the certificate extension ``oid`` (DER body of the OID), or None.

    ``names`` is :func:`certificate_names` of ``tbs`` when the caller has it already. An
    extension that appears twice is an error, as RFC 5280 says.
    """
    names = names or certificate_names(tbs)
    oid_element = bytes((OID, len(oid))) + oid
    pos, end, found = names.after_spki, names.end, None
    while pos < end:
        tag, start, stop = header(tbs, pos, end)
        pos = stop
        if tag != _EXTENSIONS:
            continue  # the optional unique identifiers
        seq_tag, pos, stop = header(tbs, start, stop)
        if seq_tag != SEQUENCE:
            raise ValueError("expected the extension list")
        while pos < stop:
            if pos + 2 <= stop and tbs[pos] == SEQUENCE and tbs[pos + 1] < 0x80:  # read in place
                ext_start, ext_end = pos + 2, pos + 2 + tbs[pos + 1]
                if ext_end > stop:
                    raise ValueError("element runs past its container")
            else:
                _, ext_start, ext_end = header(tbs, pos, stop)
            pos = ext_end
            if ext_start == ext_end or tbs[ext_start] != OID:
                raise ValueError("expected an extension OID")
            if not tbs.startswith(oid_element, ext_start):
                continue
            if found is not None:
                raise ValueError("the extension appears twice")
            oid_end = ext_start + len(oid_element)
            value_tag, value_start, value_end = header(tbs, oid_end, ext_end)
            if value_tag == BOOLEAN:  # critical flag
                value_tag, value_start, value_end = header(tbs, value_end, ext_end)
            if value_tag != OCTET_STRING or value_end != ext_end:
                raise ValueError("expected the extension value")
            found = tbs[value_start:value_end]
        break
    return found


def _algorithm_and_issuer(tbs: bytes, pos: int, end: int) -> tuple[bytes, bytes, int]:
    stop = _sequence(tbs, pos, end, "the signature algorithm")
    issuer_end = _sequence(tbs, stop, end, "the issuer name")
    return tbs[pos:stop], tbs[stop:issuer_end], issuer_end


def _sequence(data: bytes, pos: int, end: int, what: str) -> int:
    """The end of the SEQUENCE at ``pos`` (``what`` names it in the error)."""
    tag, _, stop = header(data, pos, end)
    if tag != SEQUENCE:
        raise ValueError(f"expected {what}")
    return stop
