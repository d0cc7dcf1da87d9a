"""Trust in Intel's PKI: the pinned Intel SGX Root CA, certificate chains and CRLs.

Every check here is a pure function of the bytes it is given, so results are cached by content
(bounded LRU caches). What depends on the time of verification is returned as validity windows
that the caller checks on every use: a cached result never outlives its certificates or CRLs.

Every P-256 signature goes through :func:`ecdsa_verify`, one OpenSSL verification each. A
certificate link is checked with the issuer's key, loaded once per CA, over the child's signed
TBS bytes, whose issuer name and signature algorithm are read by :mod:`scm.attestation.der`
(``verify_directly_issued_by`` would load the issuer's key and build both names every time).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from scm.attestation import der
from scm.attestation.cache import DigestCache

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
_ROOT_PEM_BLOCK = INTEL_SGX_ROOT_CA_PEM.strip()
_ROOT_SPKI = INTEL_SGX_ROOT_CA.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
)
_ROOT_DER = der.base64_der(der.pem_bodies(INTEL_SGX_ROOT_CA_PEM)[0])
_ROOT_SUBJECT = der.certificate_names(der.signed_parts(_ROOT_DER).tbs).subject
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
        return f"certificate {_subject(self.cert)} in {self.what}" if self.cert else self.what


class ChainCert:
    """A certificate of a chain: its DER, what of it was signed, its names and its object.

    Hashed and compared by DER, so that CA results can be cached by content.
    """

    __slots__ = ("_validity", "cert", "der", "names", "signed")

    def __init__(self, data: bytes) -> None:
        self.der = data
        self.signed = der.signed_parts(data)
        self.names = der.certificate_names(self.signed.tbs)
        self.cert = x509.load_der_x509_certificate(data)
        self._validity: tuple[int, int] | None = None

    @property
    def validity(self) -> tuple[int, int]:
        """notBefore and notAfter in Unix seconds (read on first use: a forged date raises)."""
        if self._validity is None:
            self._validity = (
                int(self.cert.not_valid_before_utc.timestamp()),
                int(self.cert.not_valid_after_utc.timestamp()),
            )
        return self._validity

    def __hash__(self) -> int:
        return hash(self.der)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ChainCert) and other.der == self.der


# Decoded CA certificates by their PEM text. Within one verification the PCK CA and the TCB
# signing certificate come twice (in the quote and the PCK CRL issuer chain; in the TCB Info
# and QE Identity chains), and across quotes Intel's CAs repeat. A PCK certificate (a
# platform's own) is not kept: it would only push CAs out.
CA_CERTS: DigestCache[ChainCert] = DigestCache(LINK_CACHE_SIZE)


def _decoded(bodies: list[bytes]) -> list[ChainCert]:
    return [CA_CERTS.get(body) or ChainCert(der.base64_der(body)) for body in bodies]


@dataclass(frozen=True)
class Chain:
    """A certificate chain verified up to the pinned root: leaf first, root excluded."""

    members: tuple[ChainCert, ...]
    windows: tuple[Window, ...]

    @property
    def certs(self) -> tuple[x509.Certificate, ...]:
        return tuple(member.cert for member in self.members)

    @property
    def leaf(self) -> x509.Certificate:
        return self.members[0].cert

    @property
    def root_issued(self) -> x509.Certificate:
        """The certificate the root signed directly: what the root CA CRL can revoke."""
        return self.members[-1].cert


@dataclass(frozen=True)
class RevocationLists:
    """The root CA CRL and a PCK CA CRL, both verified.

    A CRL's first lookup scans it in `cryptography`'s Rust code (a cold verification makes
    one); a CRL looked up again is in steady use, and its revoked serials become a set then
    (about 10 us per lookup for 44 entries, against a set built once in about 90 us).
    """

    root_crl: x509.CertificateRevocationList
    pck_crl: x509.CertificateRevocationList
    pck_issuer: bytes  # DER of the PCK CRL's issuer name
    windows: tuple[Window, ...]
    _serials: dict[str, frozenset[int] | None] = field(
        default_factory=dict, compare=False, repr=False
    )

    def root_revokes(self, serial: int) -> bool:
        """The root CA CRL lists ``serial`` (a CA directly under the root)."""
        return self._revokes("root", self.root_crl, serial)

    def pck_revokes(self, serial: int) -> bool:
        """The PCK CA's CRL lists ``serial`` (a PCK certificate)."""
        return self._revokes("pck", self.pck_crl, serial)

    def _revokes(self, which: str, crl: x509.CertificateRevocationList, serial: int) -> bool:
        if which not in self._serials:
            self._serials[which] = None  # looked up once
            return crl.get_revoked_certificate_by_serial_number(serial) is not None
        serials = self._serials[which]
        if serials is None:
            serials = self._serials[which] = frozenset(entry.serial_number for entry in crl)
        return serial in serials


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


def _subject(cert: x509.Certificate) -> str:
    """A certificate's subject for a message; a forged one may not even parse."""
    try:
        return cert.subject.rfc4514_string()
    except (ValueError, TypeError):
        return "a certificate with an unparsable subject"


def verify_chain(pem: bytes, what: str, keep_leaf: bool = True) -> Chain:
    """Parse a PEM chain and verify every link up to the pinned Intel root (not cached).

    Certificates are linked by subject and issuer, in whatever order they come (as Intel's
    QVL does); the pinned root may be included or not. A certificate that cannot be read
    (a forged key, name or date) is a ``chain_invalid`` like any other broken link. The
    certificates of a verified chain are kept for the next chains (without the leaf unless
    ``keep_leaf``).
    """
    # The pinned root, byte for byte as Intel ships it, need not be parsed: it is trusted as is.
    try:
        bodies = der.pem_bodies(pem, skip=_ROOT_PEM_BLOCK)
        certs = _decoded(bodies)
        if not certs:
            raise ValueError("no certificate")
    except (ValueError, x509.InvalidVersion) as exc:
        raise TrustError("chain_invalid", f"{what} is not a PEM certificate chain: {exc}") from None
    try:
        # Intel's chains come leaf first: try that order (no names built) before sorting.
        ordered = _in_given_order(certs) or _sorted_and_verified(certs, what)
        windows = tuple(Window(what, *member.validity, member.cert) for member in ordered)
    except MALFORMED_CERTIFICATE_ERRORS as exc:
        # cryptography parses fields, keys and extensions lazily: a forged certificate that
        # loaded fails here, on first use. That is malformed input, not a broken chain.
        raise TrustError(
            "chain_malformed", f"{what} holds a malformed certificate: {type(exc).__name__}"
        ) from None
    body_of = {id(cert): body for cert, body in zip(certs, bodies, strict=True)}
    for member in ordered if keep_leaf else ordered[1:]:
        CA_CERTS.put(body_of[id(member)], member)
    return Chain(tuple(ordered), windows)


# Collateral issuer chains are the same for every quote: verify each text once.
verified_chain = lru_cache(maxsize=COLLATERAL_CACHE_SIZE)(verify_chain)


@dataclass(frozen=True)
class Issuer:
    """What checking a signature needs from the CA that made it, read once per CA."""

    key: ec.EllipticCurvePublicKey
    subject: bytes  # DER of the CA's subject name


@lru_cache(maxsize=LINK_CACHE_SIZE)
def issuer(ca: ChainCert) -> Issuer:
    """The key and subject of a CA certificate (Intel has a handful: cached by content)."""
    return Issuer(chain_key(ca), ca.names.subject)


def signed_by(child: ChainCert, parent: Issuer) -> bool:
    """``parent`` issued ``child``: issuer name, ecdsa-with-SHA256 (inner and outer), signature."""
    return (
        child.names.issuer == parent.subject
        and child.signed.algorithm == der.ECDSA_WITH_SHA256
        and child.names.signature_algorithm == der.ECDSA_WITH_SHA256
        and ecdsa_verify(parent.key, child.signed.signature, child.signed.tbs)
    )


@lru_cache(maxsize=LINK_CACHE_SIZE)
def issued_by_root(child: ChainCert) -> bool:
    """The pinned root issued ``child``. Cached by content: Intel's CAs repeat endlessly."""
    return signed_by(child, _ROOT_ISSUER)


def _verify_link(child: ChainCert, parent: ChainCert | None) -> bool:
    """``parent`` (None: the pinned root) issued ``child``."""
    # Only the links to the root (Intel's CAs) repeat; a platform's leaf is seen once.
    if parent is None:
        return issued_by_root(child)
    try:
        parent_issuer = issuer(parent)
    except (*MALFORMED_CERTIFICATE_ERRORS, TrustError):
        return False  # a parent whose key does not load signed nothing
    return signed_by(child, parent_issuer)


def _in_given_order(certs: list[ChainCert]) -> list[ChainCert] | None:
    """``certs`` without the pinned root when they already run leaf to root, else None."""
    body = [c for c in certs if c.der != _ROOT_DER]
    if not body:
        return None
    parents: list[ChainCert | None] = [*body[1:], None]
    return body if all(map(_verify_link, body, parents)) else None


def _sorted_and_verified(certs: list[ChainCert], what: str) -> list[ChainCert]:
    ordered = _linked([c for c in certs if not _is_root(c.cert)], what)
    parents: list[ChainCert | None] = [*ordered[1:], None]
    for child, parent in zip(ordered, parents, strict=True):
        if not _verify_link(child, parent):
            signer = _subject(parent.cert if parent else INTEL_SGX_ROOT_CA)
            raise TrustError(
                "chain_invalid", f"{what}: {_subject(child.cert)} is not signed by {signer}"
            )
    return ordered


def _linked(certs: list[ChainCert], what: str) -> list[ChainCert]:
    """``certs`` ordered leaf first, each issued by the next, the last by the Intel root."""
    if not certs:
        raise TrustError("chain_invalid", f"{what} has no certificate besides the root")
    leaves = [
        c for c in certs if not any(o is not c and o.names.issuer == c.names.subject for o in certs)
    ]
    if len(leaves) != 1:
        raise TrustError("chain_invalid", f"{what} does not form a single chain")
    ordered = leaves
    while ordered[-1].names.issuer != _ROOT_SUBJECT:
        parents = [
            c for c in certs if c.names.subject == ordered[-1].names.issuer and c not in ordered
        ]
        if len(parents) != 1:
            raise TrustError(
                "chain_invalid", f"{what}: no single issuer for {_subject(ordered[-1].cert)}"
            )
        ordered.append(parents[0])
    if len(ordered) != len(certs):
        raise TrustError("chain_invalid", f"{what} has certificates outside its chain")
    return ordered


@lru_cache(maxsize=COLLATERAL_CACHE_SIZE)
def verified_crls(root_ca_crl: bytes, pck_crl: bytes, pck_crl_issuer_chain: str) -> RevocationLists:
    """Verify the root CA CRL with the pinned root and the PCK CRL with its issuer chain."""
    root_crl = _load_crl(root_ca_crl, "root CA CRL")
    if not _crl_signed_by(root_ca_crl, _ROOT_ISSUER):
        raise TrustError("crl_invalid", "root CA CRL is not signed by the Intel SGX Root CA")
    issuer_chain = verified_chain(pck_crl_issuer_chain.encode(), "PCK CRL issuer chain")
    crl = _load_crl(pck_crl, "PCK CRL")
    try:
        crl_issuer: Issuer | None = issuer(issuer_chain.members[0])
    except (*MALFORMED_CERTIFICATE_ERRORS, TrustError):
        crl_issuer = None
    if crl_issuer is None or not _crl_signed_by(pck_crl, crl_issuer):
        raise TrustError("crl_invalid", "PCK CRL is not signed by its issuer chain")
    revoked = RevocationLists(
        root_crl=root_crl,
        pck_crl=crl,
        pck_issuer=crl_issuer.subject,
        windows=(
            _crl_window(root_crl, "root CA CRL"),
            _crl_window(crl, "PCK CRL"),
            *issuer_chain.windows,
        ),
    )
    if revoked.root_revokes(issuer_chain.leaf.serial_number):
        raise TrustError("revoked", "the PCK CRL's issuer is revoked by the root CA CRL")
    return revoked


@lru_cache(maxsize=COLLATERAL_CACHE_SIZE)
def signed_by_leaf(pem: bytes, what: str, signature: bytes, data: bytes) -> Chain:
    """Verify ``data`` is signed (raw r || s) by the leaf of a chain that leads to the root."""
    chain = verified_chain(pem, what)
    try:
        key: ec.EllipticCurvePublicKey | None = issuer(chain.members[0]).key
    except (*MALFORMED_CERTIFICATE_ERRORS, TrustError):
        key = None
    if key is None or not verify_raw_signature(key, signature, data):
        raise TrustError("signature_invalid", f"signature does not verify with the leaf of {what}")
    return chain


def chain_key(member: ChainCert) -> ec.EllipticCurvePublicKey:
    """A chain certificate's P-256 key."""
    return spki_key(member.names.spki)


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


_ROOT_ISSUER = Issuer(ec_public_key(INTEL_SGX_ROOT_CA), _ROOT_SUBJECT)  # the pinned root, read once


def _is_root(cert: x509.Certificate) -> bool:
    if cert.subject != INTEL_SGX_ROOT_CA.subject:
        return False
    try:
        spki = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except MALFORMED_CERTIFICATE_ERRORS:
        # A root whose key does not load is not Intel's root: the chain does not lead to it
        # (pck_chain_invalid), whatever else in it parses.
        return False
    return spki == _ROOT_SPKI


def _load_crl(data: bytes, what: str) -> x509.CertificateRevocationList:
    try:
        return x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise TrustError("crl_invalid", f"{what} is not a DER CRL: {exc}") from None


def _crl_signed_by(data: bytes, parent: Issuer) -> bool:
    """Like :func:`signed_by`, for a DER CRL (that `cryptography` has already loaded)."""
    try:
        signed = der.signed_parts(data)
        names = der.crl_names(signed.tbs)
    except ValueError:
        return False
    return (
        names.issuer == parent.subject
        and signed.algorithm == der.ECDSA_WITH_SHA256
        and names.signature_algorithm == der.ECDSA_WITH_SHA256
        and ecdsa_verify(parent.key, signed.signature, signed.tbs)
    )


def _crl_window(crl: x509.CertificateRevocationList, what: str) -> Window:
    next_update = crl.next_update_utc
    if next_update is None:
        raise TrustError("crl_invalid", f"{what} has no nextUpdate")
    return Window(what, int(crl.last_update_utc.timestamp()), int(next_update.timestamp()))


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
