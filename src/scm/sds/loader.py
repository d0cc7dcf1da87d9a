"""Import existing credentials from PEM files (an operator's gateway certificates).

``NAME=CERT.pem,KEY.pem`` serves a certificate chain with its key inline (software key
mode); ``NAME=CERT.pem,KEY_LABEL`` serves a chain whose key already sits in a token
(hsm key mode). Files are checked here, so a wrong key is refused before Envoy sees it.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from scm.errors import InputError
from scm.files import read_input
from scm.sds.credentials import Credential, HsmKey, InlineKey, TrustBundle


def parse_spec(spec: str, option: str) -> tuple[str, str, str]:
    """Split ``NAME=FIRST,SECOND`` into its three parts."""
    name, sep, rest = spec.partition("=")
    first, comma, second = rest.partition(",")
    if not sep or not comma or not name or not first or not second:
        raise InputError(f"{option} {spec!r}: expected NAME=CERT.pem,KEY")
    return name, first, second


def read_certificates(path: Path) -> tuple[x509.Certificate, ...]:
    """Every certificate in a PEM file, in order."""
    data = read_input(path, "certificate file")
    try:
        certificates = tuple(x509.load_pem_x509_certificates(data))
    except (ValueError, x509.InvalidVersion):
        certificates = ()
    if not certificates:
        raise InputError(f"{path} holds no PEM certificate")
    return certificates


def load_software_credential(cert_path: Path, key_path: Path) -> Credential:
    """A chain and its private key from PEM files; the key must match the leaf."""
    chain = read_certificates(cert_path)
    key_pem = read_input(key_path, "key file")
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{key_path} is not an unencrypted PEM private key: {exc}") from None
    leaf_public = (
        chain[0]
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    key_public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if leaf_public != key_public:
        raise InputError(f"the key in {key_path} does not belong to the certificate in {cert_path}")
    return Credential(chain, InlineKey(key_pem))


def load_hsm_credential(cert_path: Path, key_label: str, token_label: str) -> Credential:
    """A chain whose private key is ``key_label`` in token ``token_label``."""
    chain = read_certificates(cert_path)
    return Credential(chain, HsmKey(key_label, token_label, key_type_of(chain[0])))


def load_trust_bundle(path: Path) -> TrustBundle:
    return TrustBundle(read_certificates(path))


def key_type_of(certificate: x509.Certificate) -> str:
    """The scm key type name ("ec-p256", "rsa-2048", ...) of a certificate's key."""
    public_key = certificate.public_key()
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        curves = {"secp256r1": "ec-p256", "secp384r1": "ec-p384", "secp521r1": "ec-p521"}
        if public_key.curve.name in curves:
            return curves[public_key.curve.name]
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"rsa-{public_key.key_size}"
    raise InputError(f"unsupported certificate key type {type(public_key).__name__}")
