"""What the remote-CA tests share: a signing CA, a workload's CSR, and the check of a chain."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.verification import PolicyBuilder, Store

from scm.keys import SoftwareKeystore
from scm.pki import IssuedCertificate, LocalCA, WorkloadIdentity, build_csr

DAY = datetime.timedelta(days=1)
SPIFFE_ID = "spiffe://example.org/ns/shop/sa/web"


@pytest.fixture
def signing_ca(tmp_path: Path) -> LocalCA:
    """The remote CA's own CA (a real one, its key in memory) that the doubles sign with."""
    return LocalCA.init(tmp_path / "signing-ca", SoftwareKeystore(), "example.org")


def workload_csr(
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | None = None,
) -> x509.CertificateSigningRequest:
    key = key or ec.generate_private_key(ec.SECP256R1())
    return build_csr(WorkloadIdentity("example.org", "shop", "web"), key)


def assert_verifies_as_workload(issued: IssuedCertificate, roots: list[x509.Certificate]) -> None:
    """The chain verifies up to ``roots`` as a TLS client certificate naming SPIFFE_ID."""
    verifier = PolicyBuilder().store(Store(roots)).build_client_verifier()
    verified = verifier.verify(issued.leaf, issued.chain[1:])
    assert x509.UniformResourceIdentifier(SPIFFE_ID) in verified.subjects


def write_bundle(directory: Path, ca: LocalCA, name: str = "signer-root.pem") -> Path:
    """``ca``'s trust bundle as a PEM file in ``directory``."""
    path = directory / name
    path.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in ca.trust_bundle()))
    return path
