"""Issuance in tests: a real local CA in the shared token, issuers over it, a CA outage."""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from scm.keys import Pkcs11Keystore, SoftwareKeystore
from scm.pki import CAUnavailableError, IssuedCertificate, LocalCA, WorkloadIdentity, build_csr
from scm.sds.issuer import CertificateIssuer, IssuancePolicy
from scm.sds.leafkeys import HSM, LeafKeys
from scm.sds.records import CredentialRecords
from tests.certs import cert_pem, key_pem

WORKLOAD = WorkloadIdentity("cluster.local", "shop", "frontend", ("localhost",))


class SwitchableCA:
    """The real local CA behind a switch that makes it unreachable (a CA outage)."""

    def __init__(self, ca: LocalCA) -> None:
        self.ca = ca
        self.down = False

    async def sign(
        self, csr: x509.CertificateSigningRequest, ttl: datetime.timedelta
    ) -> IssuedCertificate:
        if self.down:
            raise CAUnavailableError("the CA is unreachable (outage)")
        return await self.ca.sign(csr, ttl)

    def trust_bundle(self) -> list[x509.Certificate]:
        return self.ca.trust_bundle()


def make_issuer(
    state_dir: Path,
    keystore: Pkcs11Keystore,
    ca: LocalCA | SwitchableCA,
    mode: str,
    ttl: datetime.timedelta = datetime.timedelta(hours=1),
    grace_ratio: float = 0.5,
) -> CertificateIssuer:
    """An issuer like ``scm sds serve`` builds, without jitter so renewal times are exact."""
    keys = LeafKeys(keystore if mode == HSM else SoftwareKeystore(), mode, "scm")
    policy = IssuancePolicy(ttl=ttl, grace_ratio=grace_ratio, jitter_ratio=0.0)
    return CertificateIssuer(ca, keys, WORKLOAD, CredentialRecords(state_dir / "sds"), policy)


def client_files(ca: LocalCA, directory: Path) -> tuple[Path, Path]:
    """A client certificate from ``ca`` (Envoy's listener requires one) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    identity = WorkloadIdentity("cluster.local", "shop", "client")
    issued = ca.issue(build_csr(identity, key), datetime.timedelta(hours=1))
    cert_path, key_path = directory / "client.pem", directory / "client-key.pem"
    cert_path.write_bytes(cert_pem(issued.leaf))
    key_path.write_bytes(key_pem(key))
    return cert_path, key_path
