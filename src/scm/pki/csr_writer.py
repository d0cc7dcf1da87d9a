"""A PKCS#10 request (RFC 2986) with attributes ``cryptography``'s builder cannot encode.

``CertificateSigningRequestBuilder.add_attribute`` writes every value as a UTF8String
unless given a private keyword; scm's attestation evidence is an OCTET STRING. This module
writes the CertificationRequestInfo itself from public parts (the Name, the key's
SubjectPublicKeyInfo and each extension's DER from ``cryptography``), adds the extra
attributes, and signs it with the key's public ``sign`` (a token key signs in the token).
For the same key, subject and extensions, the request info is byte for byte what
``cryptography``'s builder writes (a test checks it), so the two paths cannot drift.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from scm.pki import der

EXTENSION_REQUEST_OID = "1.2.840.113549.1.9.14"  # PKCS#9 extensionRequest

# Signature algorithm identifiers (RFC 5758 for ECDSA, no parameters; RFC 4055 for
# PKCS#1 v1.5 RSA, NULL parameters), as cryptography's builder chooses them.
_ECDSA_OIDS = {
    "sha256": "1.2.840.10045.4.3.2",
    "sha384": "1.2.840.10045.4.3.3",
    "sha512": "1.2.840.10045.4.3.4",
}
_RSA_OIDS = {
    "sha256": "1.2.840.113549.1.1.11",
    "sha384": "1.2.840.113549.1.1.12",
    "sha512": "1.2.840.113549.1.1.13",
}

Extensions = list[tuple[x509.ExtensionType, bool]]  # (value, critical), in request order


def attribute(oid: str, *values: bytes) -> bytes:
    """An Attribute: its type and the SET OF its DER-encoded values."""
    return der.sequence(der.object_identifier(oid), der.set_of(*values))


def request_info(
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
    extensions: Extensions,
    attributes: list[bytes],
) -> bytes:
    """The CertificationRequestInfo: version 1 (0), subject, key, extensionRequest and
    ``attributes`` (each from :func:`attribute`)."""
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encoded = [
        der.sequence(
            der.object_identifier(value.oid.dotted_string),
            der.boolean(True) if critical else b"",  # DEFAULT FALSE is left out in DER
            der.octet_string(value.public_bytes()),
        )
        for value, critical in extensions
    ]
    every = list(attributes)
    if encoded:
        every.append(attribute(EXTENSION_REQUEST_OID, der.sequence(*encoded)))
    return der.sequence(
        der.integer(0),
        subject.public_bytes(),
        spki,
        der.implicit_set_of(0, *every),
    )


def sign_request(
    info: bytes,
    private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    algorithm: hashes.SHA256 | hashes.SHA384 | hashes.SHA512,
) -> x509.CertificateSigningRequest:
    """The CSR: ``info`` signed by ``private_key`` (ECDSA, or RSA with PKCS#1 v1.5)."""
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        signature = private_key.sign(info, ec.ECDSA(algorithm))
        identifier = der.sequence(der.object_identifier(_ECDSA_OIDS[algorithm.name]))
    else:
        signature = private_key.sign(info, padding.PKCS1v15(), algorithm)
        identifier = der.sequence(der.object_identifier(_RSA_OIDS[algorithm.name]), der.null())
    return x509.load_der_x509_csr(der.sequence(info, identifier, der.bit_string(signature)))
