"""Certificates for workloads: CSRs naming SPIFFE identities and the CAs that sign them.

Every CA implements :class:`CertificateAuthority` (``await ca.sign(csr, ttl)`` and
``ca.trust_bundle()``), so callers such as the SDS server do not care which one is
configured; :func:`configured_ca` returns the one the settings name. :class:`LocalCA`
keeps its signing key in the keystore; :class:`KubernetesCA` asks a cluster signer
through the CSR API; :class:`IstioCA` asks istiod (or another Istio CA) over gRPC.
"""

from scm.pki.authority import CertificateAuthority, IssuedCertificate, csr_to_pem, load_csr
from scm.pki.configured import configured_ca
from scm.pki.errors import (
    CAExistsError,
    CANotFoundError,
    CAUnavailableError,
    CertificateRequestError,
    InvalidSvidError,
)
from scm.pki.identity import WorkloadIdentity, build_csr, signature_hash
from scm.pki.istio_ca import IstioCA, IstioCASettings
from scm.pki.kubernetes_ca import KubernetesCA, KubernetesCASettings
from scm.pki.local_ca import CASettings, LocalCA
from scm.pki.svid import SvidPolicy, check_svid
from scm.pki.ttl import parse_ttl

__all__ = [
    "CAExistsError",
    "CANotFoundError",
    "CASettings",
    "CAUnavailableError",
    "CertificateAuthority",
    "CertificateRequestError",
    "InvalidSvidError",
    "IssuedCertificate",
    "IstioCA",
    "IstioCASettings",
    "KubernetesCA",
    "KubernetesCASettings",
    "LocalCA",
    "SvidPolicy",
    "WorkloadIdentity",
    "build_csr",
    "check_svid",
    "configured_ca",
    "csr_to_pem",
    "load_csr",
    "parse_ttl",
    "signature_hash",
]
