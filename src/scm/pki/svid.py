"""The X.509-SVID policy, stated once: what the local CA signs and what scm accepts.

Three callers hold certificates to it: the local CA before it signs a CSR
(:meth:`SvidPolicy.approve`, then :func:`leaf_builder`), the remote backends on the chain a
Kubernetes signer or an Istio CA returned, and the SDS server before it serves a
certificate (both through :func:`check_svid`).

The rules (SPIFFE X.509-SVID and SPIFFE ID specifications, narrowed where scm is stricter):

- exactly one URI SAN, a valid SPIFFE ID with a path (:mod:`scm.pki.spiffe_id`); other
  SANs are DNS names only, and the local CA signs those only under ``[ca] dns_suffixes``
  (none when that is empty);
- CA:FALSE; key usage digitalSignature (plus keyEncipherment for RSA) and never
  keyCertSign or cRLSign; extended key usage serverAuth and clientAuth;
- keys P-256, P-384 or RSA of 2048 to 4096 bits; signatures with SHA-256 or stronger;
- the subject is the CA's choice (empty), never the CSR's;
- the lifetime is at most ``max_ttl`` and never past the CA certificate's own expiry.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from scm.errors import InputError
from scm.pki.errors import CertificateRequestError, InvalidSvidError
from scm.pki.spiffe_id import check_spiffe_id, shown, spiffe_id_problem, trust_domain_of

_DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")

SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH
LEAF_USAGES = frozenset({SERVER_AUTH, CLIENT_AUTH})
LEAF_EXTENDED_KEY_USAGE = x509.ExtendedKeyUsage([SERVER_AUTH, CLIENT_AUTH])
_USAGE_NAMES = {SERVER_AUTH: "serverAuth", CLIENT_AUTH: "clientAuth"}
_STRONG_HASHES = (hashes.SHA256, hashes.SHA384, hashes.SHA512)
_CURVES = (ec.SECP256R1, ec.SECP384R1)
RSA_BITS = (2048, 4096)

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


def key_problem(key: object) -> str | None:
    """Why ``key`` is not a key the policy allows, or None."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        if isinstance(key.curve, _CURVES):
            return None
        return f"uses curve {key.curve.name} (allowed: P-256, P-384)"
    if isinstance(key, rsa.RSAPublicKey):
        if RSA_BITS[0] <= key.key_size <= RSA_BITS[1]:
            return None
        return f"is RSA-{key.key_size} (allowed: RSA 2048 to 4096 bits)"
    return f"is a {type(key).__name__.removeprefix('_')} key (allowed: P-256, P-384, RSA)"


def dns_name_allowed(name: str, suffixes: Iterable[str]) -> bool:
    """``name`` is a plain host name equal to or under one of ``suffixes``."""
    labels = name.split(".")
    if not all(_DNS_LABEL.fullmatch(label) for label in labels) or len(name) > 253:
        return False
    for suffix in suffixes:
        bare = suffix.strip(".").lower()
        if bare and (name == bare or name.endswith("." + bare)):
            return True
    return False


@dataclass(frozen=True)
class SvidRequest:
    """What a CSR the policy approved asks for: the identity, DNS names and key."""

    spiffe_id: str
    dns_names: tuple[str, ...]
    public_key: PublicKey


@dataclass(frozen=True)
class SvidPolicy:
    """What the local CA signs: SVIDs in ``trust_domain``, DNS names under ``dns_suffixes``."""

    trust_domain: str
    dns_suffixes: tuple[str, ...] = field(default_factory=tuple)
    max_ttl: datetime.timedelta = datetime.timedelta(days=30)

    def approve(self, csr: x509.CertificateSigningRequest) -> SvidRequest:
        """What to certify; CertificateRequestError naming the first rule ``csr`` breaks."""
        if not csr.is_signature_valid:
            raise CertificateRequestError("the CSR's signature does not verify")
        key = csr.public_key()
        if (problem := key_problem(key)) is not None:
            raise CertificateRequestError(f"the CSR's key {problem}")
        assert isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
        _refuse_requested_powers(csr.extensions)
        try:
            sans = list(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
        except x509.ExtensionNotFound:
            raise CertificateRequestError("the CSR names no identity (no SAN)") from None
        uris = [san.value for san in sans if isinstance(san, x509.UniformResourceIdentifier)]
        if len(uris) != 1:
            raise CertificateRequestError(
                f"the CSR has {len(uris)} URI SANs: an SVID has exactly one SPIFFE ID"
            )
        spiffe_id = check_spiffe_id(uris[0])
        if trust_domain_of(spiffe_id) != self.trust_domain:
            raise CertificateRequestError(
                f"SPIFFE ID {shown(spiffe_id)} is outside trust domain {self.trust_domain}"
            )
        dns_names: list[str] = []
        for san in sans:
            if isinstance(san, x509.DNSName):
                dns_names.append(self._check_dns(san.value))
            elif not isinstance(san, x509.UniformResourceIdentifier):
                raise CertificateRequestError(
                    f"SAN type {type(san).__name__} is not allowed by the policy"
                )
        return SvidRequest(spiffe_id, tuple(dict.fromkeys(dns_names)), key)

    def _check_dns(self, name: str) -> str:
        if not self.dns_suffixes:
            raise CertificateRequestError(
                f"DNS name {shown(name)} is not signed: [ca] dns_suffixes is empty"
            )
        if not dns_name_allowed(name.lower(), self.dns_suffixes):
            raise CertificateRequestError(
                f"DNS name {shown(name)} is not under [ca] dns_suffixes "
                f"({', '.join(self.dns_suffixes)})"
            )
        return name.lower()

    def not_after(
        self, now: datetime.datetime, ttl: datetime.timedelta, ca_not_after: datetime.datetime
    ) -> datetime.datetime:
        """The end of a leaf's life: ``ttl``, capped by ``max_ttl`` and the CA's expiry."""
        if ttl <= datetime.timedelta(0):
            raise InputError("the certificate lifetime must be positive")
        if ca_not_after <= now:
            raise CertificateRequestError("the CA certificate has expired: it signs nothing")
        # Capped before adding, so an absurd TTL or max_ttl cannot overflow the date.
        return now + min(ttl, self.max_ttl, ca_not_after - now)


def _refuse_requested_powers(extensions: x509.Extensions) -> None:
    """A CSR asking for more than a leaf may have is refused rather than quietly narrowed."""
    for extension in extensions:
        value = extension.value
        if isinstance(value, x509.BasicConstraints) and value.ca:
            raise CertificateRequestError("the CSR asks for a CA certificate (CA:TRUE)")
        if isinstance(value, x509.KeyUsage) and (value.key_cert_sign or value.crl_sign):
            raise CertificateRequestError("the CSR asks for certificate or CRL signing")
        if isinstance(value, x509.ExtendedKeyUsage):
            extra = [oid.dotted_string for oid in value if oid not in LEAF_USAGES]
            if extra:
                raise CertificateRequestError(
                    f"the CSR asks for extended key usage {', '.join(extra)} "
                    "(allowed: serverAuth, clientAuth)"
                )


def leaf_key_usage(key: PublicKey) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=isinstance(key, rsa.RSAPublicKey),
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def leaf_builder(
    request: SvidRequest,
    issuer: x509.Certificate,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    serial: int,
) -> x509.CertificateBuilder:
    """The leaf profile for an approved request, ready to be signed by ``issuer``'s key."""
    sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(request.spiffe_id)]
    sans += [x509.DNSName(name) for name in request.dns_names]
    issuer_ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        # The subject is the CA's choice: empty, so nothing in the CSR's subject (say
        # O=system:masters) reaches a relying party that reads names.
        .subject_name(x509.Name([]))
        .issuer_name(issuer.subject)
        .public_key(request.public_key)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(leaf_key_usage(request.public_key), critical=True)
        .add_extension(LEAF_EXTENDED_KEY_USAGE, critical=False)
        # An empty subject makes the SAN extension critical (RFC 5280 4.2.1.6).
        .add_extension(x509.SubjectAlternativeName(sans), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(request.public_key), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski),
            critical=False,
        )
    )


def check_svid(
    chain: list[x509.Certificate],
    bundle: list[x509.Certificate],
    expected_spiffe_id: str | None = None,
    expected_key: object | None = None,
    allowed_dns: Iterable[str] | None = None,
    required_usages: frozenset[x509.ObjectIdentifier] = frozenset({CLIENT_AUTH}),
    source: str = "the certificate",
    now: datetime.datetime | None = None,
) -> x509.Certificate:
    """The leaf of ``chain`` once it is an X.509-SVID that verifies to ``bundle``.

    ``expected_spiffe_id`` and ``expected_key``: what it must name and certify;
    ``allowed_dns``: the only DNS SANs it may carry (None: any); ``required_usages``: the
    extended key usages it must have (only serverAuth and clientAuth are ever allowed).
    InvalidSvidError, one line starting with ``source``, names the first thing that differs.
    """
    if not chain:
        raise InvalidSvidError(f"{source}: no certificate")
    problem = _svid_problem(chain, bundle, expected_spiffe_id, expected_key, allowed_dns)
    problem = problem or _usage_problem(chain[0], required_usages)
    problem = problem or _path_problem(chain, bundle, now)
    if problem is not None:
        raise InvalidSvidError(f"{source}: {problem}")
    return chain[0]


def _svid_problem(
    chain: list[x509.Certificate],
    bundle: list[x509.Certificate],
    expected_spiffe_id: str | None,
    expected_key: object | None,
    allowed_dns: Iterable[str] | None,
) -> str | None:
    leaf = chain[0]
    try:
        sans = list(leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return "the leaf has no SAN, so no SPIFFE ID"
    uris = [san.value for san in sans if isinstance(san, x509.UniformResourceIdentifier)]
    if len(uris) != 1:
        return f"the leaf has {len(uris)} URI SANs instead of exactly one SPIFFE ID"
    if (id_problem := spiffe_id_problem(uris[0])) is not None:
        return f"the leaf's SPIFFE ID {shown(uris[0])} {id_problem}"
    if expected_spiffe_id is not None and uris[0] != expected_spiffe_id:
        return f"the leaf names {shown(uris[0])} instead of {expected_spiffe_id}"
    allowed = None if allowed_dns is None else {name.lower() for name in allowed_dns}
    for san in sans:
        if isinstance(san, x509.DNSName):
            if allowed is not None and san.value.lower() not in allowed:
                return f"the leaf carries DNS name {shown(san.value)} that was not asked for"
        elif not isinstance(san, x509.UniformResourceIdentifier):
            return f"the leaf carries a {type(san).__name__} SAN"
    return _leaf_extension_problem(leaf) or _key_and_time_problem(chain, expected_key)


def _leaf_extension_problem(leaf: x509.Certificate) -> str | None:
    try:
        constraints = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return "the leaf lacks basic constraints"
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return "the leaf lacks key usage"
    if constraints.ca:
        return "the leaf is a CA certificate (CA:TRUE)"
    if not usage.digital_signature:
        return "the leaf's key usage lacks digitalSignature"
    if usage.key_cert_sign or usage.crl_sign:
        return "the leaf's key usage allows certificate or CRL signing"
    return None


def _key_and_time_problem(chain: list[x509.Certificate], expected_key: object) -> str | None:
    leaf = chain[0]
    key = leaf.public_key()
    if (problem := key_problem(key)) is not None:
        return f"the leaf's key {problem}"
    if expected_key is not None and _spki(key) != _spki(expected_key):
        return "the leaf certifies another key than the one asked for"
    # A trust anchor's self-signature is never checked, so its hash does not matter.
    for certificate in (c for c in chain if c.issuer != c.subject):
        algorithm = certificate.signature_hash_algorithm
        if not isinstance(algorithm, _STRONG_HASHES):
            name = algorithm.name if algorithm is not None else "no separate hash"
            return f"a certificate in the chain is signed with {name} (SHA-256 or stronger)"
    issuers_end = min((c.not_valid_after_utc for c in chain[1:]), default=None)
    if issuers_end is not None and leaf.not_valid_after_utc > issuers_end:
        return "the leaf outlives the CA certificate that issued it"
    return None


def _usage_problem(
    leaf: x509.Certificate, required: frozenset[x509.ObjectIdentifier]
) -> str | None:
    try:
        usages = set(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return "the leaf has no extended key usage"
    if extra := usages - LEAF_USAGES:
        names = ", ".join(sorted(oid.dotted_string for oid in extra))
        return f"the leaf has extended key usage {names} (allowed: serverAuth, clientAuth)"
    if missing := required - usages:
        names = ", ".join(sorted(_USAGE_NAMES.get(oid, oid.dotted_string) for oid in missing))
        return f"the leaf's extended key usage lacks {names}"
    return None


def _path_problem(
    chain: list[x509.Certificate], bundle: list[x509.Certificate], now: datetime.datetime | None
) -> str | None:
    """RFC 5280 path validation with cryptography's verifier, anchored in ``bundle``."""
    if not bundle:
        return "there is no trust bundle to verify it against"
    builder = PolicyBuilder().store(Store(bundle))
    if now is not None:
        builder = builder.time(now)
    try:
        builder.build_client_verifier().verify(chain[0], chain[1:])
    except VerificationError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else "no path"
        return f"the chain does not verify to the trust bundle ({reason})"
    return None


def _spki(key: object) -> bytes:
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        return b""  # a key of another kind never matches an allowed leaf key
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
