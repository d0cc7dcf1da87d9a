"""Trust in Intel's PKI: the pinned Intel SGX Root CA, signatures, keys and validity windows.

Every P-256 signature goes through :func:`ecdsa_verify`, one OpenSSL verification each (raw
r || s signatures are converted to DER once). Chains and CRLs are :mod:`scm.attestation.chains`.
What depends on the time of verification is returned as validity windows that the caller
checks on every use: a cached result never outlives its certificates or CRLs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from scm.attestation import der

# The Intel SGX Root CA (CN=Intel SGX Root CA, O=Intel Corporation; valid 2018-05-21 to
# 2049-12-31; SHA-256 fingerprint 44:A0:19:6B:...:74:D3). Trust is pinned to its key and name,
# so a chain may end in this certificate or in a re-issue of it with the same key.
INTEL_SGX_ROOT_CA_PEM = b"""-----BEGIN CERTIFICATE-----
MIICjzCCAjSgAwIBAgIUImUM1lqdNInzg7SVUr9QGzknBqwwCgYIKoZIzj0EAwIw
aDEaMBgGA1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENv
cnBvcmF0aW9uMRQwEgYDVQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJ
BgNVBAYTAlVTMB4XDTE4MDUyMTEwNDUxMFoXDTQ5MTIzMTIzNTk1OVowaDEaMBgG
A1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENvcnBvcmF0
aW9uMRQwEgYDVQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJBgNVBAYT
AlVTMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEC6nEwMDIYZOj/iPWsCzaEKi7
1OiOSLRFhWGjbnBVJfVnkY4u3IjkDYYL0MxO4mqsyYjlBalTVYxFP2sJBK5zlKOB
uzCBuDAfBgNVHSMEGDAWgBQiZQzWWp00ifODtJVSv1AbOScGrDBSBgNVHR8ESzBJ
MEegRaBDhkFodHRwczovL2NlcnRpZmljYXRlcy50cnVzdGVkc2VydmljZXMuaW50
ZWwuY29tL0ludGVsU0dYUm9vdENBLmRlcjAdBgNVHQ4EFgQUImUM1lqdNInzg7SV
Ur9QGzknBqwwDgYDVR0PAQH/BAQDAgEGMBIGA1UdEwEB/wQIMAYBAf8CAQEwCgYI
KoZIzj0EAwIDSQAwRgIhAOW/5QkR+S9CiSDcNoowLuPRLsWGf/Yi7GSX94BgwTwg
AiEA4J0lrHoMs+Xo5o/sX6O9QWxHRAvZUGOdRQ7cvqRXaqI=
-----END CERTIFICATE-----
"""
INTEL_SGX_ROOT_CA = x509.load_pem_x509_certificate(INTEL_SGX_ROOT_CA_PEM)
ROOT_PEM_BLOCK = INTEL_SGX_ROOT_CA_PEM.strip()
ROOT_SPKI = INTEL_SGX_ROOT_CA.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
)
ROOT_DER = der.base64_der(der.pem_bodies(INTEL_SGX_ROOT_CA_PEM)[0])
ROOT_SUBJECT = der.certificate_names(der.signed_parts(ROOT_DER).tbs).subject
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_P256 = ec.SECP256R1()
# SubjectPublicKeyInfo of an uncompressed P-256 point: id-ecPublicKey, prime256v1, BIT STRING.
_P256_SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")
_P256_SPKI_LENGTH = len(_P256_SPKI_PREFIX) + 65
# Collateral is per FMSPC and TCB evaluation number: a fleet has few of each. Links are
# CA-to-CA signatures (a handful of Intel CAs); attestation keys are one per platform's QE.
COLLATERAL_CACHE_SIZE = 1024
LINK_CACHE_SIZE = 64
PLATFORM_CACHE_SIZE = 16384
# What cryptography raises for a certificate whose DER, key, algorithm or extensions are
# forged: ASN.1 errors and "Invalid key" are ValueError, an unknown curve or key type is
# UnsupportedAlgorithm, a repeated extension DuplicateExtension, a bad version InvalidVersion.
MALFORMED_CERTIFICATE_ERRORS = (
    ValueError,
    TypeError,
    UnsupportedAlgorithm,
    x509.DuplicateExtension,
    x509.InvalidVersion,
)


class TrustError(Exception):
    """A chain, CRL or signature does not verify; ``reason`` is a stable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Window:
    """When a piece of evidence is valid, in Unix seconds (inclusive).

    For a certificate, ``cert`` is kept and its subject named only when a message needs it:
    building names is a good part of the cost of a cold verification.
    """

    what: str
    not_before: int
    not_after: int
    cert: x509.Certificate | None = None

    @property
    def description(self) -> str:
        return f"certificate {subject_text(self.cert)} in {self.what}" if self.cert else self.what


def check_windows(windows: tuple[Window, ...], now: int) -> None:
    """Raise ``expired``/``not_yet_valid`` for the first window ``now`` falls outside."""
    for window in windows:
        if now < window.not_before:
            raise TrustError(
                "not_yet_valid",
                f"{window.description} is not valid before {_iso(window.not_before)}",
            )
        if now > window.not_after:
            raise TrustError("expired", f"{window.description} expired at {_iso(window.not_after)}")


def raw_signature_to_der(signature: bytes) -> bytes:
    """Convert a raw 64-byte P-256 signature (r || s, big-endian) into DER for `cryptography`."""
    if len(signature) != 64:
        raise TrustError(
            "signature_invalid", f"an ECDSA-P256 signature is 64 bytes, not {len(signature)}"
        )
    return encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )


def ecdsa_verify(key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> bool:
    """True when the DER ECDSA-SHA256 ``signature`` over ``data`` verifies with ``key``.

    The one place a signature is checked: one call into OpenSSL, nothing else.
    """
    try:
        key.verify(signature, data, _ECDSA_SHA256)
    except (InvalidSignature, ValueError):
        return False
    return True


def verify_raw_signature(key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> bool:
    """True when ``signature`` (raw r || s) over ``data`` verifies with ``key``."""
    try:
        return ecdsa_verify(key, raw_signature_to_der(signature), data)
    except TrustError:
        return False


@lru_cache(maxsize=PLATFORM_CACHE_SIZE)
def attestation_public_key(raw: bytes) -> ec.EllipticCurvePublicKey:
    """The P-256 key from a quote's 64-byte attestation key (x || y)."""
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(_P256, b"\x04" + raw)
    except ValueError:
        raise TrustError(
            "quote_signature_invalid", "the attestation key is not a P-256 point"
        ) from None


def subject_text(cert: x509.Certificate) -> str:
    """A certificate's subject for a message; a forged one may not even parse."""
    try:
        return cert.subject.rfc4514_string()
    except (ValueError, TypeError):
        return "a certificate with an unparsable subject"


def spki_key(spki: bytes) -> ec.EllipticCurvePublicKey:
    """The EC key of a SubjectPublicKeyInfo (DER).

    A P-256 point is made into a key directly (from_encoded_point), faster than reading the
    SubjectPublicKeyInfo through OpenSSL's decoders, which any other form goes through.
    Raises ValueError for a point off the curve, TrustError for a key that is not EC.
    """
    if len(spki) == _P256_SPKI_LENGTH and spki.startswith(_P256_SPKI_PREFIX):
        return ec.EllipticCurvePublicKey.from_encoded_point(_P256, spki[len(_P256_SPKI_PREFIX) :])
    key = serialization.load_der_public_key(spki)
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise TrustError("chain_invalid", "a certificate of the chain has no EC key")
    return key


def ec_public_key(cert: x509.Certificate) -> ec.EllipticCurvePublicKey:
    """The certificate's key; Intel's SGX PKI uses only ECDSA P-256."""
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise TrustError("chain_invalid", f"{cert.subject.rfc4514_string()} has no EC key")
    return key


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
