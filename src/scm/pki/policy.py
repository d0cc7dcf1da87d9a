"""What the local CA agrees to sign: a valid CSR naming identities in its trust domain."""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography import x509

from scm.pki.errors import CertificateRequestError
from scm.pki.identity import SPIFFE_SCHEME


@dataclass(frozen=True)
class SanPolicy:
    """SAN rules: SPIFFE IDs only in ``trust_domain``; DNS names under ``dns_suffixes``.

    An empty ``dns_suffixes`` allows any DNS name. IP, e-mail and other SANs are refused.
    """

    trust_domain: str
    dns_suffixes: tuple[str, ...] = field(default_factory=tuple)

    def check(self, csr: x509.CertificateSigningRequest) -> list[x509.GeneralName]:
        """The SANs to certify; CertificateRequestError when the CSR must not be signed."""
        if not csr.is_signature_valid:
            raise CertificateRequestError("the CSR's signature does not verify")
        try:
            sans = list(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
        except x509.ExtensionNotFound:
            raise CertificateRequestError("the CSR names no identity (no SAN)") from None
        for san in sans:
            self._check_one(san)
        if not any(isinstance(san, x509.UniformResourceIdentifier) for san in sans):
            raise CertificateRequestError("the CSR has no SPIFFE ID")
        return sans

    def _check_one(self, san: x509.GeneralName) -> None:
        if isinstance(san, x509.UniformResourceIdentifier):
            prefix = f"{SPIFFE_SCHEME}{self.trust_domain}/"
            if not san.value.startswith(prefix) or len(san.value) == len(prefix):
                raise CertificateRequestError(
                    f"SAN {san.value} is outside trust domain {self.trust_domain}"
                )
        elif isinstance(san, x509.DNSName):
            name = san.value.lower()
            if self.dns_suffixes and not any(
                name == s.lstrip(".") or name.endswith("." + s.lstrip("."))
                for s in self.dns_suffixes
            ):
                raise CertificateRequestError(f"DNS name {san.value} is not allowed by the policy")
        else:
            raise CertificateRequestError(
                f"SAN type {type(san).__name__} is not allowed by the policy"
            )
