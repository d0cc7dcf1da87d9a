"""Certificates for workloads: CSRs naming SPIFFE identities and the CAs that sign them.

Every CA implements :class:`CertificateAuthority` (``await ca.sign(csr, ttl)`` and
``ca.trust_bundle()``), so callers such as the SDS server do not care which one is
configured. :class:`LocalCA` keeps its signing key in the keystore.
"""

from scm.pki.authority import CertificateAuthority, IssuedCertificate, csr_to_pem, load_csr
from scm.pki.errors import (
    CAExistsError,
    CANotFoundError,
    CAUnavailableError,
    CertificateRequestError,
)
from scm.pki.identity import WorkloadIdentity, build_csr, signature_hash
from scm.pki.local_ca import CASettings, LocalCA
from scm.pki.policy import SanPolicy
from scm.pki.ttl import parse_ttl

__all__ = [
    "CAExistsError",
    "CANotFoundError",
    "CASettings",
    "CAUnavailableError",
    "CertificateAuthority",
    "CertificateRequestError",
    "IssuedCertificate",
    "LocalCA",
    "SanPolicy",
    "WorkloadIdentity",
    "build_csr",
    "csr_to_pem",
    "load_csr",
    "parse_ttl",
    "signature_hash",
]
