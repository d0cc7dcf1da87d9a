"""Workload identities and the CSRs that ask for a certificate naming them."""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from scm.pki.csr_evidence import CsrEvidence, evidence_attribute
from scm.pki.csr_writer import Extensions, request_info, sign_request
from scm.pki.errors import CertificateRequestError
from scm.pki.spiffe_id import SPIFFE_SCHEME, check_spiffe_id, check_trust_domain
from scm.pki.svid import LEAF_EXTENDED_KEY_USAGE, leaf_key_usage

__all__ = ["SPIFFE_SCHEME", "WorkloadIdentity", "build_csr", "check_trust_domain", "signature_hash"]


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
        check_spiffe_id(self.spiffe_id)

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
    public_key = private_key.public_key()
    subject = x509.Name([])
    extensions: Extensions = [
        (x509.SubjectAlternativeName(sans), True),
        (leaf_key_usage(public_key), True),
        (LEAF_EXTENDED_KEY_USAGE, False),
    ]
    if evidence is not None:
        # An OCTET STRING attribute: written by scm.pki.csr_writer from public parts.
        info = request_info(subject, public_key, extensions, [evidence_attribute(evidence)])
        return sign_request(info, private_key, signature_hash(private_key))
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    for value, critical in extensions:
        builder = builder.add_extension(value, critical=critical)
    return builder.sign(private_key, signature_hash(private_key))
