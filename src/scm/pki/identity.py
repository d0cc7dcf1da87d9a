"""Workload identities and the CSRs that ask for a certificate naming them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from scm.pki.csr_evidence import CsrEvidence, add_evidence
from scm.pki.errors import CertificateRequestError

SPIFFE_SCHEME = "spiffe://"
# The SPIFFE ID standard: lowercase letters, digits, dots, dashes and underscores, 255 at most.
_TRUST_DOMAIN = re.compile(r"[a-z0-9._-]{1,255}")


def check_trust_domain(value: str) -> str:
    """``value`` when it is a SPIFFE trust domain name; CertificateRequestError otherwise."""
    if not _TRUST_DOMAIN.fullmatch(value):
        raise CertificateRequestError(
            f"invalid trust domain {value!r}: use lowercase letters, digits, '.', '-' and '_'"
        )
    return value


@dataclass(frozen=True)
class WorkloadIdentity:
    """Who a workload is, in the Kubernetes/Istio SPIFFE form."""

    trust_domain: str
    namespace: str
    service_account: str
    dns_names: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        check_trust_domain(self.trust_domain)
        for name in ("namespace", "service_account"):
            value = getattr(self, name)
            if not value or "/" in value or not value.isprintable() or " " in value:
                raise CertificateRequestError(f"invalid {name.replace('_', ' ')} {value!r}")
        object.__setattr__(self, "dns_names", tuple(self.dns_names))

    @property
    def spiffe_id(self) -> str:
        return f"{SPIFFE_SCHEME}{self.trust_domain}/ns/{self.namespace}/sa/{self.service_account}"


def signature_hash(
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
) -> hashes.SHA256 | hashes.SHA384:
    """The hash to sign with: SHA-384 for P-384 keys (matching strength), else SHA-256."""
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def build_csr(
    identity: WorkloadIdentity,
    private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    evidence: CsrEvidence | None = None,
) -> x509.CertificateSigningRequest:
    """A CSR for ``identity`` signed by ``private_key`` (a token signer works).

    The subject is empty, as for SPIFFE X.509-SVIDs, so the SAN extension is critical.
    ``evidence`` (from :func:`scm.pki.csr_evidence.collect_evidence` for this key) is carried
    as an attribute a CA that requires attestation checks.
    """
    sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(identity.spiffe_id)]
    sans += [x509.DNSName(name) for name in identity.dns_names]
    is_rsa = isinstance(private_key, rsa.RSAPrivateKey)
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName(sans), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=is_rsa,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    )
    if evidence is not None:
        builder = add_evidence(builder, evidence)
    return builder.sign(private_key, signature_hash(private_key))
