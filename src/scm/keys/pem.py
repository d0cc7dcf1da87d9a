"""Reading PEM keys and certificate chains given to scm, with one-line errors."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from scm.keys.errors import KeyFormatError
from scm.keys.model import KeyType, Signer


def load_private_key(pem: bytes) -> tuple[Signer, KeyType]:
    """Parse an unencrypted PEM private key of a type scm handles."""
    if b"ENCRYPTED" in pem:
        raise KeyFormatError("the private key is encrypted: decrypt it before importing")
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise KeyFormatError("the private key is encrypted: decrypt it before importing") from None
    except (ValueError, UnicodeDecodeError):
        raise KeyFormatError("the private key is not a valid PEM private key") from None
    key_type = KeyType.of_public_key(key.public_key())
    if key_type is None or not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise KeyFormatError(
            f"unsupported private key ({_describe(key)}): use one of "
            + ", ".join(t.value for t in KeyType)
        )
    return key, key_type


def load_certificate_chain(pem: bytes) -> list[x509.Certificate]:
    """Parse one or more PEM certificates, leaf first."""
    try:
        chain = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise KeyFormatError("the certificate is not a valid PEM certificate chain") from None
    return chain


def chain_to_pem(chain: list[x509.Certificate]) -> bytes:
    """PEM text of ``chain`` in order."""
    return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in chain)


def check_certificate_matches(chain: list[x509.Certificate], public_key: object) -> None:
    """The leaf must certify ``public_key``: a certificate for another key is a mistake."""
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    leaf_key = chain[0].public_key().public_bytes(der, spki)
    if not hasattr(public_key, "public_bytes") or public_key.public_bytes(der, spki) != leaf_key:
        raise KeyFormatError("the certificate does not match the private key")


def _describe(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return f"EC {key.curve.name}"
    if isinstance(key, rsa.RSAPrivateKey):
        return f"RSA {key.key_size}"
    return type(key).__name__
