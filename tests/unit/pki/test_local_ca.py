"""The local CA: its key in the real token, its SAN policy, and what it issues."""

from __future__ import annotations

import asyncio
import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.verification import PolicyBuilder, Store

from scm.errors import InputError
from scm.keys import KeyType, Pkcs11Keystore
from scm.pki import (
    CAExistsError,
    CANotFoundError,
    CertificateAuthority,
    CertificateRequestError,
    LocalCA,
    WorkloadIdentity,
    build_csr,
)
from tests.keystores import RawToken

DAY = datetime.timedelta(days=1)


@pytest.fixture
def ca(tmp_path: Path, token_keystore: Pkcs11Keystore, label: str) -> LocalCA:
    return LocalCA.init(tmp_path, token_keystore, "example.org", KeyType.EC_P256, label)


def _workload_csr(
    trust_domain: str = "example.org", dns: tuple[str, ...] = ()
) -> x509.CertificateSigningRequest:
    key = ec.generate_private_key(ec.SECP256R1())
    return build_csr(WorkloadIdentity(trust_domain, "shop", "web", dns), key)


def test_csr_names_the_spiffe_id_and_dns_names(token_keystore: Pkcs11Keystore, label: str) -> None:
    token_keystore.generate(label, KeyType.EC_P256)
    identity = WorkloadIdentity("example.org", "shop", "web", ("web.shop.svc",))
    csr = build_csr(identity, token_keystore.signer(label))
    assert csr.is_signature_valid
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://example.org/ns/shop/sa/web"
    ]
    assert san.value.get_values_for_type(x509.DNSName) == ["web.shop.svc"]


def test_issued_chain_verifies_as_a_tls_client_certificate(ca: LocalCA) -> None:
    assert isinstance(ca, CertificateAuthority)
    issued = asyncio.run(ca.sign(_workload_csr(), DAY))
    leaf = issued.leaf
    assert issued.chain[1:] == ca.chain
    assert leaf.not_valid_after_utc - datetime.datetime.now(datetime.UTC) <= DAY
    verifier = PolicyBuilder().store(Store(ca.trust_bundle())).build_client_verifier()
    verified = verifier.verify(leaf, issued.chain[1:])
    assert (
        x509.UniformResourceIdentifier("spiffe://example.org/ns/shop/sa/web") in verified.subjects
    )


def test_ttl_is_capped_by_the_policy(ca: LocalCA) -> None:
    issued = ca.issue(_workload_csr(), datetime.timedelta(days=3650))
    lifetime = issued.not_after - datetime.datetime.now(datetime.UTC)
    assert lifetime <= ca.max_ttl


def test_load_finds_the_same_ca(
    ca: LocalCA, tmp_path: Path, token_keystore: Pkcs11Keystore
) -> None:
    loaded = LocalCA.load(tmp_path, token_keystore)
    assert loaded.certificate == ca.certificate
    loaded.issue(_workload_csr(), DAY).leaf.verify_directly_issued_by(ca.certificate)


def test_missing_ca_and_second_init(
    ca: LocalCA, tmp_path: Path, token_keystore: Pkcs11Keystore, raw_token: RawToken, label: str
) -> None:
    with pytest.raises(CANotFoundError):
        LocalCA.load(tmp_path / "elsewhere", token_keystore)
    other = label + "-2"
    with pytest.raises(CAExistsError):
        LocalCA.init(tmp_path, token_keystore, "example.org", KeyType.EC_P256, other)
    assert raw_token.objects(label=other) == []


@pytest.mark.parametrize(
    ("csr", "message"),
    [
        (_workload_csr("evil.org"), "outside trust domain example.org"),
        (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([]))
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.UniformResourceIdentifier("spiffe://example.org/ns/a/sa/b"),
                        x509.RFC822Name("a@example.org"),
                    ]
                ),
                critical=True,
            )
            .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256()),
            "RFC822Name is not allowed",
        ),
        (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "x")]))
            .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256()),
            "no SAN",
        ),
    ],
    ids=["foreign-trust-domain", "email-san", "no-san"],
)
def test_policy_refuses(ca: LocalCA, csr: x509.CertificateSigningRequest, message: str) -> None:
    with pytest.raises(CertificateRequestError, match=message):
        ca.issue(csr, DAY)


def test_csr_with_a_broken_signature_is_refused(ca: LocalCA) -> None:
    der = bytearray(_workload_csr().public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01  # inside the signature value
    with pytest.raises(CertificateRequestError, match="signature does not verify"):
        ca.issue(x509.load_der_x509_csr(bytes(der)), DAY)


def test_intermediate_under_an_imported_root(
    tmp_path: Path, token_keystore: Pkcs11Keystore, label: str
) -> None:
    root_ca = LocalCA.init(tmp_path / "root", token_keystore, "example.org", KeyType.EC_P256, label)
    root_key = ec.generate_private_key(ec.SECP256R1())
    # A root whose key the operator holds: scm uses it once in memory.
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "operator root")])
    now = datetime.datetime.now(datetime.UTC)
    root = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(root_key.public_key())
        .serial_number(7)
        .not_valid_before(now - DAY)
        .not_valid_after(now + 30 * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), False)
        .sign(root_key, hashes.SHA256())
    )
    with pytest.raises(InputError, match="does not match"):
        LocalCA.init(
            tmp_path,
            token_keystore,
            "example.org",
            KeyType.EC_P256,
            label + "-x",
            ([root_ca.certificate], root_key),
        )
    ca = LocalCA.init(
        tmp_path, token_keystore, "example.org", KeyType.EC_P256, label + "-i", ([root], root_key)
    )
    assert ca.trust_bundle() == [root]
    issued = ca.issue(_workload_csr(), DAY)
    verifier = PolicyBuilder().store(Store([root])).build_client_verifier()
    verifier.verify(issued.leaf, issued.chain[1:])


@pytest.mark.parametrize("trust_domain", ["", "Example.org", "spiffe://example.org", "a b"])
def test_init_refuses_what_is_not_a_spiffe_trust_domain_and_creates_nothing(
    tmp_path: Path, token_keystore: Pkcs11Keystore, label: str, trust_domain: str
) -> None:
    with pytest.raises(CertificateRequestError, match="invalid trust domain"):
        LocalCA.init(tmp_path, token_keystore, trust_domain, KeyType.EC_P256, label)
    assert token_keystore.find(label) is None
    assert not LocalCA.directory(tmp_path).exists()


def test_a_trust_domain_longer_than_x509_names_allow_still_gets_a_ca(
    tmp_path: Path, token_keystore: Pkcs11Keystore, label: str
) -> None:
    long_domain = "very-long-team-name." * 4 + "example.org"  # 91 characters
    ca = LocalCA.init(tmp_path, token_keystore, long_domain, KeyType.EC_P256, label)
    issued = ca.issue(_workload_csr(long_domain), DAY)
    assert issued.leaf.issuer == ca.certificate.subject
    assert LocalCA.load(tmp_path, token_keystore).policy.trust_domain == long_domain


def test_an_absurd_ttl_and_max_ttl_are_capped_by_the_ca_certificate(
    tmp_path: Path, token_keystore: Pkcs11Keystore, label: str
) -> None:
    huge = datetime.timedelta(days=999_999_999)
    ca = LocalCA.init(tmp_path, token_keystore, "example.org", KeyType.EC_P256, label, max_ttl=huge)
    leaf = ca.issue(_workload_csr(), huge).leaf
    assert leaf.not_valid_after_utc == ca.certificate.not_valid_after_utc
