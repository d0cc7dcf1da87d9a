"""Certificate chains and CRLs of Intel's SGX PKI, verified up to the pinned root.

A chain is linked by subject and issuer in any order, as Intel's QVL does. Each link is
checked with the issuer's key, loaded once per CA, over the child's signed bytes sliced from
its DER (:mod:`scm.attestation.der`): ``verify_directly_issued_by`` loaded the key and built
both names every time, and ``tbs_certificate_bytes`` re-encodes on every call. Decoded CA
certificates, CA keys and links to the root are cached by content; results that depend on the
time come back as validity windows the caller checks on every use.

Signatures go through ``trust.ecdsa_verify`` (looked up on the module, so that a caller can
count them: bench/attest.py does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from scm.attestation import der, trust
from scm.attestation.cache import DigestCache
from scm.attestation.trust import (
    COLLATERAL_CACHE_SIZE,
    INTEL_SGX_ROOT_CA,
    LINK_CACHE_SIZE,
    MALFORMED_CERTIFICATE_ERRORS,
    ROOT_DER,
    ROOT_PEM_BLOCK,
    ROOT_SPKI,
    ROOT_SUBJECT,
    TrustError,
    Window,
    ec_public_key,
    spki_key,
    subject_text,
    verify_raw_signature,
)


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
        bodies = der.pem_bodies(pem, skip=ROOT_PEM_BLOCK)
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


_ROOT_ISSUER = Issuer(ec_public_key(INTEL_SGX_ROOT_CA), ROOT_SUBJECT)  # the pinned root, read once


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
        and trust.ecdsa_verify(parent.key, child.signed.signature, child.signed.tbs)
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
    body = [c for c in certs if c.der != ROOT_DER]
    if not body:
        return None
    parents: list[ChainCert | None] = [*body[1:], None]
    return body if all(map(_verify_link, body, parents)) else None


def _sorted_and_verified(certs: list[ChainCert], what: str) -> list[ChainCert]:
    ordered = _linked([c for c in certs if not _is_root(c.cert)], what)
    parents: list[ChainCert | None] = [*ordered[1:], None]
    for child, parent in zip(ordered, parents, strict=True):
        if not _verify_link(child, parent):
            signer = subject_text(parent.cert if parent else INTEL_SGX_ROOT_CA)
            raise TrustError(
                "chain_invalid", f"{what}: {subject_text(child.cert)} is not signed by {signer}"
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
    while ordered[-1].names.issuer != ROOT_SUBJECT:
        parents = [
            c for c in certs if c.names.subject == ordered[-1].names.issuer and c not in ordered
        ]
        if len(parents) != 1:
            raise TrustError(
                "chain_invalid", f"{what}: no single issuer for {subject_text(ordered[-1].cert)}"
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
    return spki == ROOT_SPKI


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
        and trust.ecdsa_verify(parent.key, signed.signature, signed.tbs)
    )


def _crl_window(crl: x509.CertificateRevocationList, what: str) -> Window:
    next_update = crl.next_update_utc
    if next_update is None:
        raise TrustError("crl_invalid", f"{what} has no nextUpdate")
    return Window(what, int(crl.last_update_utc.timestamp()), int(next_update.timestamp()))
