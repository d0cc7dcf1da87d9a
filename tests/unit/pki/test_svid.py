"""The X.509-SVID policy: what the local CA signs, and what check_svid accepts."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from scm.keys import SoftwareKeystore
from scm.pki import CertificateRequestError, InvalidSvidError, LocalCA, check_svid
from scm.pki.spiffe_id import spiffe_id_problem
from scm.pki.svid import SvidPolicy
from tests.spiffe_check import assert_spiffe_svid

DAY = datetime.timedelta(days=1)
ID = "spiffe://example.org/ns/shop/sa/web"
P256 = ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    state = tmp_path_factory.mktemp("ca")
    LocalCA.init(state, keystore := SoftwareKeystore(), "example.org")
    return LocalCA.load(state, keystore, dns_suffixes=("svc.example.org",))


def csr(
    sans: list[x509.GeneralName] | None = None,
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey = P256,
    subject: x509.Name | None = None,
    extensions: tuple[x509.ExtensionType, ...] = (),
) -> x509.CertificateSigningRequest:
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject or x509.Name([]))
    sans = [x509.UniformResourceIdentifier(ID)] if sans is None else sans
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=True)
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm)


@pytest.mark.parametrize(
    "value",
    [
        "spiffe://example.org/ns/shop/sa/web",
        "spiffe://a.b-c_d/x/Y.z-_0",
        "spiffe://example.org/...a",
    ],
)
def test_valid_spiffe_ids(value: str) -> None:
    assert spiffe_id_problem(value) is None


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("SPIFFE://example.org/a", "does not start with spiffe://"),
        ("https://example.org/a", "does not start with spiffe://"),
        ("spiffe://Example.org/a", "trust domain that is not lowercase"),
        ("spiffe://example.org:8443/a", "has a port"),
        ("spiffe://admin@example.org/a", "has userinfo"),
        ("spiffe://example.org/ns/shop?x#y", "has a query or fragment"),
        ("spiffe://example.org/a#b", "has a query or fragment"),
        ("spiffe://example.org", "has no path"),
        ("spiffe://example.org/", "has no path"),
        ("spiffe://example.org/a//b", "empty path segment"),
        ("spiffe://example.org/a/", "empty path segment"),
        ("spiffe://example.org/a/../b", "'.' or '..'"),
        ("spiffe://example.org/./b", "'.' or '..'"),
        ("spiffe://example.org/a%2Fb", "path segment that is not"),
        ("spiffe://example.org/a b", "path segment that is not"),
        ("spiffe:///a", "trust domain that is not"),
        ("spiffe://example.org/" + "a" * 2048, "longer than 2048 bytes"),
    ],
)
def test_invalid_spiffe_ids_name_the_rule(value: str, problem: str) -> None:
    found = spiffe_id_problem(value)
    assert found is not None and problem in found


def test_the_leaf_subject_is_the_cas_not_the_csrs(ca: LocalCA) -> None:
    masters = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
            x509.NameAttribute(NameOID.COMMON_NAME, "admin"),
        ]
    )
    leaf = ca.issue(csr(subject=masters), DAY).leaf
    assert leaf.subject == x509.Name([])
    assert leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical


def test_a_leaf_follows_the_profile_and_is_an_svid_to_the_spiffe_library(ca: LocalCA) -> None:
    key = rsa.generate_private_key(65537, 2048)
    dns = x509.DNSName("web.svc.example.org")
    issued = ca.issue(csr([x509.UniformResourceIdentifier(ID), dns], key), DAY)
    leaf = issued.leaf
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment and not usage.key_cert_sign
    assert set(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == {
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    }
    assert check_svid(issued.chain, ca.trust_bundle(), ID, key.public_key()) == leaf
    assert_spiffe_svid(issued.chain, key, ca.trust_bundle(), ID)


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (
            csr(
                [
                    x509.UniformResourceIdentifier(ID),
                    x509.UniformResourceIdentifier("spiffe://example.org/ns/shop?x#y"),
                ]
            ),
            "the CSR has 2 URI SANs",
        ),
        (
            csr([x509.UniformResourceIdentifier("spiffe://example.org/ns/shop?x#y")]),
            "has a query or fragment",
        ),
        (csr([]), "no SAN"),
        (csr([x509.DNSName("web.svc.example.org")]), "the CSR has 0 URI SANs"),
        (
            csr([x509.UniformResourceIdentifier(ID), x509.DNSName("www.google.com")]),
            "DNS name 'www.google.com' is not under [ca] dns_suffixes (svc.example.org)",
        ),
        (
            csr([x509.UniformResourceIdentifier(ID), x509.DNSName("*.svc.example.org")]),
            "is not under",
        ),
        (
            csr([x509.UniformResourceIdentifier(ID), x509.DNSName("svc.example.org.evil.com")]),
            "is not under",
        ),
        (
            csr([x509.UniformResourceIdentifier("spiffe://evil.org/ns/shop/sa/web")]),
            "outside trust domain example.org",
        ),
        (
            csr(
                [
                    x509.UniformResourceIdentifier(ID),
                    x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
                ]
            ),
            "SAN type IPAddress is not allowed",
        ),
        (csr(key=rsa.generate_private_key(65537, 1024)), "key is RSA-1024"),
        (csr(key=ec.generate_private_key(ec.SECP521R1())), "uses curve secp521r1"),
        (csr(key=ed25519.Ed25519PrivateKey.generate()), "Ed25519PublicKey key"),
        (csr(extensions=(x509.BasicConstraints(ca=True, path_length=None),)), "CA:TRUE"),
        (
            csr(extensions=(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]),)),
            "extended key usage 1.3.6.1.5.5.7.3.3",
        ),
        (
            csr(
                extensions=(
                    x509.KeyUsage(True, False, False, False, False, True, False, False, False),
                )
            ),
            "certificate or CRL signing",
        ),
    ],
    ids=[
        "two-uris",
        "query-fragment",
        "no-san",
        "no-uri",
        "foreign-dns",
        "wildcard-dns",
        "suffix-lookalike",
        "foreign-trust-domain",
        "ip-san",
        "rsa-1024",
        "p-521",
        "ed25519",
        "ca-true",
        "code-signing",
        "cert-sign",
    ],
)
def test_the_local_ca_refuses_what_the_policy_does_not_allow(
    ca: LocalCA, request_: x509.CertificateSigningRequest, reason: str
) -> None:
    with pytest.raises(CertificateRequestError) as caught:
        ca.issue(request_, DAY)
    assert reason in str(caught.value)
    assert "\n" not in str(caught.value)


def test_without_dns_suffixes_no_dns_name_is_signed(tmp_path: Path) -> None:
    ca = LocalCA.init(tmp_path, SoftwareKeystore(), "example.org")
    request = csr([x509.UniformResourceIdentifier(ID), x509.DNSName("www.google.com")])
    with pytest.raises(CertificateRequestError, match=r"\[ca\] dns_suffixes is empty"):
        ca.issue(request, DAY)


def test_lifetime_is_within_max_ttl_and_the_ca_certificate() -> None:
    policy = SvidPolicy("example.org", max_ttl=DAY)
    now = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    assert policy.not_after(now, 10 * DAY, now + 365 * DAY) == now + DAY
    assert policy.not_after(now, DAY, now + datetime.timedelta(hours=2)) == now + (
        datetime.timedelta(hours=2)
    )
    with pytest.raises(CertificateRequestError, match="the CA certificate has expired"):
        policy.not_after(now, DAY, now)


# -- check_svid: what remote CAs return and what the SDS server serves -------------------


def test_check_svid_refuses_a_chain_from_another_ca(ca: LocalCA, tmp_path: Path) -> None:
    other = LocalCA.init(tmp_path, SoftwareKeystore(), "example.org")
    issued = other.issue(csr(), DAY)
    with pytest.raises(InvalidSvidError, match=r"^the certificate: the chain does not verify"):
        check_svid(issued.chain, ca.trust_bundle(), ID, P256.public_key())


def test_check_svid_refuses_another_id_key_or_dns_name(ca: LocalCA) -> None:
    issued = ca.issue(
        csr([x509.UniformResourceIdentifier(ID), x509.DNSName("a.svc.example.org")]), DAY
    )
    bundle = ca.trust_bundle()
    with pytest.raises(
        InvalidSvidError, match=r"names 'spiffe://example\.org/ns/shop/sa/web' instead"
    ):
        check_svid(issued.chain, bundle, "spiffe://example.org/ns/shop/sa/db")
    with pytest.raises(InvalidSvidError, match="certifies another key"):
        check_svid(issued.chain, bundle, ID, ec.generate_private_key(ec.SECP256R1()).public_key())
    with pytest.raises(InvalidSvidError, match=r"'a\.svc\.example\.org' that was not asked"):
        check_svid(issued.chain, bundle, ID, P256.public_key(), allowed_dns=())


def test_check_svid_refuses_a_ca_certificate_or_an_empty_bundle(ca: LocalCA) -> None:
    with pytest.raises(InvalidSvidError, match="the leaf has no SAN"):
        check_svid(ca.chain, ca.trust_bundle())
    issued = ca.issue(csr(), DAY)
    with pytest.raises(InvalidSvidError, match="no trust bundle"):
        check_svid(issued.chain, [])


def test_check_svid_uses_the_given_time(ca: LocalCA) -> None:
    issued = ca.issue(csr(), DAY)
    later = datetime.datetime.now(datetime.UTC) + 2 * DAY
    with pytest.raises(InvalidSvidError, match="does not verify"):
        check_svid(issued.chain, ca.trust_bundle(), now=later)
