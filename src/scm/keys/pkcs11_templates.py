"""PKCS#11 attribute templates for what scm puts in a token: pure data, no session.

Key policy, the attributes of imported keys, certificate and chain objects, and the
encodings PKCS#11 uses for EC parameters and points.
"""

from __future__ import annotations

from typing import Any

import pkcs11
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pkcs11 import Attribute, CertificateType, ObjectClass
from pkcs11.util import biginteger
from pkcs11.util.ec import encode_named_curve_parameters

from scm.keys.errors import KeyFormatError
from scm.keys.model import KeyType, Signer

Template = dict[Attribute, Any]

CURVES = {
    KeyType.EC_P256: ("secp256r1", ec.SECP256R1()),
    KeyType.EC_P384: ("secp384r1", ec.SECP384R1()),
}
EC_PARAMS = {kt: encode_named_curve_parameters(name) for kt, (name, _) in CURVES.items()}
#: CKA_APPLICATION of the data object holding a key's whole certificate chain as PEM.
CHAIN_APPLICATION = "scm certificate chain"

# Private keys scm puts in a token can sign and nothing else, and can never be read out.
PRIVATE_KEY_POLICY: Template = {
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.SIGN: True,
    Attribute.DECRYPT: False,
    Attribute.UNWRAP: False,
}
PUBLIC_KEY_POLICY: Template = {Attribute.PRIVATE: False, Attribute.VERIFY: True}


def check_label(label: str) -> None:
    if not label or not label.isprintable() or len(label) > 64:
        raise KeyFormatError("a key label must be 1 to 64 printable characters")


def key_attributes(key: Signer) -> tuple[Template, Template]:
    """PKCS#11 attributes of the private and public halves of ``key``."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        key_type = KeyType.of_public_key(key.public_key())
        assert key_type is not None
        point = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        base = {Attribute.KEY_TYPE: pkcs11.KeyType.EC, Attribute.EC_PARAMS: EC_PARAMS[key_type]}
        return (
            {
                **base,
                Attribute.CLASS: ObjectClass.PRIVATE_KEY,
                Attribute.VALUE: biginteger(key.private_numbers().private_value),
            },
            {
                **base,
                Attribute.CLASS: ObjectClass.PUBLIC_KEY,
                Attribute.EC_POINT: der_octet_string(point),
            },
        )
    numbers = key.private_numbers()
    public = numbers.public_numbers
    base = {
        Attribute.KEY_TYPE: pkcs11.KeyType.RSA,
        Attribute.MODULUS: biginteger(public.n),
        Attribute.PUBLIC_EXPONENT: biginteger(public.e),
    }
    return (
        {
            **base,
            Attribute.CLASS: ObjectClass.PRIVATE_KEY,
            Attribute.PRIVATE_EXPONENT: biginteger(numbers.d),
            Attribute.PRIME_1: biginteger(numbers.p),
            Attribute.PRIME_2: biginteger(numbers.q),
            Attribute.EXPONENT_1: biginteger(numbers.dmp1),
            Attribute.EXPONENT_2: biginteger(numbers.dmq1),
            Attribute.COEFFICIENT: biginteger(numbers.iqmp),
        },
        {**base, Attribute.CLASS: ObjectClass.PUBLIC_KEY},
    )


def certificate_template(label: str, key_id: bytes, leaf: x509.Certificate) -> Template:
    """The leaf as an X.509 certificate object, for other PKCS#11 tools."""
    return {
        Attribute.CLASS: ObjectClass.CERTIFICATE,
        Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
        Attribute.TOKEN: True,
        Attribute.PRIVATE: False,
        Attribute.LABEL: label,
        Attribute.ID: key_id,
        Attribute.SUBJECT: leaf.subject.public_bytes(),
        Attribute.VALUE: leaf.public_bytes(serialization.Encoding.DER),
    }


def chain_template(label: str, chain: list[x509.Certificate]) -> Template:
    """The whole chain as one PEM data object, found by the key's label."""
    return {
        Attribute.CLASS: ObjectClass.DATA,
        Attribute.TOKEN: True,
        Attribute.PRIVATE: False,
        Attribute.LABEL: label,
        Attribute.APPLICATION: CHAIN_APPLICATION,
        Attribute.VALUE: b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain),
    }


def der_octet_string(value: bytes) -> bytes:
    """DER OCTET STRING around an EC point (CKA_EC_POINT); points here are < 128 bytes."""
    return bytes([0x04, len(value)]) + value


def der_octet_string_value(der: bytes) -> bytes:
    """The EC point inside CKA_EC_POINT; some tokens return it without the DER wrapping."""
    if len(der) >= 2 and der[0] == 0x04 and der[1] == len(der) - 2:
        return der[2:]
    return der
