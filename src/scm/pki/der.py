"""A small DER writer (ITU-T X.690): the few ASN.1 types scm encodes itself.

``cryptography`` encodes everything scm needs except a CSR attribute whose value is not a
string type; for that, :mod:`scm.pki.csr_writer` assembles the request from these parts.
Every function returns one complete TLV (tag, length, value).
"""

from __future__ import annotations

BOOLEAN = 0x01
INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
NULL = 0x05
OBJECT_IDENTIFIER = 0x06
SEQUENCE = 0x30
SET = 0x31
CONTEXT_CONSTRUCTED = 0xA0


def tlv(tag: int, content: bytes) -> bytes:
    """One element: ``tag``, the definite length of ``content`` (short or long form), content."""
    size = len(content)
    if size < 0x80:
        return bytes((tag, size)) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(length))) + length + content


def sequence(*items: bytes) -> bytes:
    return tlv(SEQUENCE, b"".join(items))


def set_of(*items: bytes) -> bytes:
    """A SET OF: DER orders the members by their encodings (X.690, 11.6)."""
    return tlv(SET, b"".join(sorted(items)))


def implicit_set_of(number: int, *items: bytes) -> bytes:
    """A ``[number] IMPLICIT SET OF`` (a CSR's attributes are ``[0]``), members in DER order."""
    return tlv(CONTEXT_CONSTRUCTED | number, b"".join(sorted(items)))


def integer(value: int) -> bytes:
    """A non-negative INTEGER, in the fewest octets (a leading 0 keeps it positive)."""
    if value < 0:
        raise ValueError("negative integers are not needed here")
    return tlv(INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def boolean(value: bool) -> bytes:
    return tlv(BOOLEAN, b"\xff" if value else b"\x00")


def null() -> bytes:
    return tlv(NULL, b"")


def octet_string(data: bytes) -> bytes:
    return tlv(OCTET_STRING, data)


def bit_string(data: bytes) -> bytes:
    """A BIT STRING of whole octets (no unused bits), as signatures are."""
    return tlv(BIT_STRING, b"\x00" + data)


def object_identifier(dotted: str) -> bytes:
    """An OBJECT IDENTIFIER from its dotted form: the first two arcs share one subidentifier,
    each subidentifier is base 128, high bit set on all but its last octet."""
    arcs = [int(arc) for arc in dotted.split(".")]
    if len(arcs) < 2 or min(arcs) < 0 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] > 39):
        raise ValueError(f"not an object identifier: {dotted}")
    content = bytearray()
    for number in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [number & 0x7F]
        number >>= 7
        while number:
            chunk.append(0x80 | (number & 0x7F))
            number >>= 7
        content += bytes(reversed(chunk))
    return tlv(OBJECT_IDENTIFIER, bytes(content))
