"""What the remote-CA tests share: a signing CA, a workload's CSR, and the check of a chain."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.verification import PolicyBuilder, Store

from scm.keys import SoftwareKeystore
from scm.pki import IssuedCertificate, LocalCA, WorkloadIdentity, build_csr, signature_hash
from scm.pki.svid import LEAF_EXTENDED_KEY_USAGE, leaf_key_usage

DAY = datetime.timedelta(days=1)
SPIFFE_ID = "spiffe://example.org/ns/shop/sa/web"


@pytest.fixture
def signing_keystore() -> SoftwareKeystore:
    return SoftwareKeystore()


@pytest.fixture
def signing_ca(tmp_path: Path, signing_keystore: SoftwareKeystore) -> LocalCA:
    """The remote CA's own CA (a real one, its key in memory) that the doubles sign with."""
    return LocalCA.init(tmp_path / "signing-ca", signing_keystore, "example.org")


def forging(
    ca: LocalCA, keystore: SoftwareKeystore, sans: list[x509.GeneralName]
) -> Callable[[x509.CertificateSigningRequest, datetime.timedelta], IssuedCertificate]:
    """A CA gone wrong: it signs the CSR's key with ``sans`` instead of what was asked."""

    def issue(csr: x509.CertificateSigningRequest, ttl: datetime.timedelta) -> IssuedCertificate:
        now = datetime.datetime.now(datetime.UTC)
        key = csr.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(ca.certificate.subject)
            .public_key(key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + ttl)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(leaf_key_usage(key), critical=True)
            .add_extension(LEAF_EXTENDED_KEY_USAGE, critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    ca.certificate.public_key()  # type: ignore[arg-type]
                ),
                critical=False,
            )
        )
        signer = keystore.signer(ca.key_label)
        return IssuedCertificate([leaf.sign(signer, signature_hash(signer)), *ca.chain])

    return issue


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
