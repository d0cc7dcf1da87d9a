"""Trust in Intel's PKI: the pinned Intel SGX Root CA, certificate chains and CRLs.

Every check here is a pure function of the bytes it is given, so results are cached by content
(bounded LRU caches). What depends on the time of verification is returned as validity windows
that the caller checks on every use: a cached result never outlives its certificates or CRLs.
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
_ROOT_SPKI = INTEL_SGX_ROOT_CA.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
)
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
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
_CACHE_SIZE = 256


class TrustError(Exception):
    """A chain, CRL or signature does not verify; ``reason`` is a stable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Window:
    """When a piece of evidence is valid, in Unix seconds (inclusive)."""

    what: str
    not_before: int
    not_after: int


@dataclass(frozen=True)
class Chain:
    """A certificate chain verified up to the pinned root: leaf first, root excluded."""

    certs: tuple[x509.Certificate, ...]
    windows: tuple[Window, ...]

    @property
    def leaf(self) -> x509.Certificate:
        return self.certs[0]

    @property
    def root_issued(self) -> x509.Certificate:
        """The certificate the root signed directly: what the root CA CRL can revoke."""
        return self.certs[-1]


@dataclass(frozen=True)
class RevocationLists:
    """The root CA CRL and a PCK CA CRL, both verified; serials are the revoked ones."""

    root_revoked: frozenset[int]
    pck_issuer: x509.Name
    pck_revoked: frozenset[int]
    windows: tuple[Window, ...]


def check_windows(windows: tuple[Window, ...], now: int) -> None:
    """Raise ``expired``/``not_yet_valid`` for the first window ``now`` falls outside."""
    for window in windows:
        if now < window.not_before:
            raise TrustError(
                "not_yet_valid", f"{window.what} is not valid before {_iso(window.not_before)}"
            )
        if now > window.not_after:
            raise TrustError("expired", f"{window.what} expired at {_iso(window.not_after)}")


def raw_signature_to_der(signature: bytes) -> bytes:
    """Convert a raw 64-byte P-256 signature (r || s, big-endian) into DER for `cryptography`."""
    if len(signature) != 64:
        raise TrustError(
            "signature_invalid", f"an ECDSA-P256 signature is 64 bytes, not {len(signature)}"
        )
    return encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )


def verify_raw_signature(key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> bool:
    """True when ``signature`` (raw r || s) over ``data`` verifies with ``key``."""
    try:
        key.verify(raw_signature_to_der(signature), data, _ECDSA_SHA256)
    except (InvalidSignature, TrustError):
        return False
    return True


@lru_cache(maxsize=_CACHE_SIZE)
def attestation_public_key(raw: bytes) -> ec.EllipticCurvePublicKey:
    """The P-256 key from a quote's 64-byte attestation key (x || y)."""
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + raw)
    except ValueError:
        raise TrustError(
            "quote_signature_invalid", "the attestation key is not a P-256 point"
        ) from None


def _subject(cert: x509.Certificate) -> str:
    """A certificate's subject for a message; a forged one may not even parse."""
    try:
        return cert.subject.rfc4514_string()
    except ValueError:
        return "a certificate with an unparsable subject"


@lru_cache(maxsize=_CACHE_SIZE)
def verified_chain(pem: bytes, what: str) -> Chain:
    """Parse a PEM chain (leaf first) and verify every link up to the pinned Intel root."""
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except (ValueError, x509.InvalidVersion) as exc:
        raise TrustError("chain_invalid", f"{what} is not a PEM certificate chain: {exc}") from None
    try:
        return _chain_to_root(certs, what)
    except MALFORMED_CERTIFICATE_ERRORS as exc:
        # cryptography parses fields, keys and extensions lazily: a forged certificate that
        # loaded fails here, on first use. That is malformed input, not a broken chain.
        raise TrustError(
            "chain_malformed", f"{what} holds a malformed certificate: {type(exc).__name__}"
        ) from None


def _chain_to_root(certs: list[x509.Certificate], what: str) -> Chain:
    if certs and _is_root(certs[-1]):
        certs = certs[:-1]
    if not certs:
        raise TrustError("chain_invalid", f"{what} has no certificate besides the root")
    for child, parent in zip(certs, [*certs[1:], INTEL_SGX_ROOT_CA], strict=True):
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature):
            raise TrustError(
                "chain_invalid",
                f"{what}: {_subject(child)} is not signed by {_subject(parent)}",
            ) from None
    windows = tuple(
        Window(
            f"certificate {cert.subject.rfc4514_string()} in {what}",
            int(cert.not_valid_before_utc.timestamp()),
            int(cert.not_valid_after_utc.timestamp()),
        )
        for cert in certs
    )
    return Chain(tuple(certs), windows)


@lru_cache(maxsize=_CACHE_SIZE)
def verified_crls(root_ca_crl: bytes, pck_crl: bytes, pck_crl_issuer_chain: str) -> RevocationLists:
    """Verify the root CA CRL with the pinned root and the PCK CRL with its issuer chain."""
    root_crl = _load_crl(root_ca_crl, "root CA CRL")
    if not root_crl.is_signature_valid(ec_public_key(INTEL_SGX_ROOT_CA)):
        raise TrustError("crl_invalid", "root CA CRL is not signed by the Intel SGX Root CA")
    issuer_chain = verified_chain(pck_crl_issuer_chain.encode(), "PCK CRL issuer chain")
    crl = _load_crl(pck_crl, "PCK CRL")
    if crl.issuer != issuer_chain.leaf.subject or not crl.is_signature_valid(
        ec_public_key(issuer_chain.leaf)
    ):
        raise TrustError("crl_invalid", "PCK CRL is not signed by its issuer chain")
    root_revoked = frozenset(entry.serial_number for entry in root_crl)
    if issuer_chain.leaf.serial_number in root_revoked:
        raise TrustError("revoked", "the PCK CRL's issuer is revoked by the root CA CRL")
    windows = (
        _crl_window(root_crl, "root CA CRL"),
        _crl_window(crl, "PCK CRL"),
        *issuer_chain.windows,
    )
    return RevocationLists(
        root_revoked=root_revoked,
        pck_issuer=crl.issuer,
        pck_revoked=frozenset(entry.serial_number for entry in crl),
        windows=windows,
    )


@lru_cache(maxsize=_CACHE_SIZE)
def signed_by_leaf(pem: bytes, what: str, signature: bytes, data: bytes) -> Chain:
    """Verify ``data`` is signed (raw r || s) by the leaf of a chain that leads to the root."""
    chain = verified_chain(pem, what)
    key = chain.leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not verify_raw_signature(
        key, signature, data
    ):
        raise TrustError("signature_invalid", f"signature does not verify with the leaf of {what}")
    return chain


def ec_public_key(cert: x509.Certificate) -> ec.EllipticCurvePublicKey:
    """The certificate's key; Intel's SGX PKI uses only ECDSA P-256."""
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise TrustError("chain_invalid", f"{cert.subject.rfc4514_string()} has no EC key")
    return key


def _is_root(cert: x509.Certificate) -> bool:
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return spki == _ROOT_SPKI and cert.subject == INTEL_SGX_ROOT_CA.subject


def _load_crl(der: bytes, what: str) -> x509.CertificateRevocationList:
    try:
        return x509.load_der_x509_crl(der)
    except ValueError as exc:
        raise TrustError("crl_invalid", f"{what} is not a DER CRL: {exc}") from None


def _crl_window(crl: x509.CertificateRevocationList, what: str) -> Window:
    next_update = crl.next_update_utc
    if next_update is None:
        raise TrustError("crl_invalid", f"{what} has no nextUpdate")
    return Window(what, int(crl.last_update_utc.timestamp()), int(next_update.timestamp()))


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
