"""Property tests: CSRs of every shape against the local CA's SVID policy.

Each generated part carries whether the policy allows it, decided by how it was made
(not by re-running the policy's own code); a CSR is acceptable exactly when all its
parts are. Accepted CSRs must yield a leaf that passes check_svid and the SPIFFE
library; the others must be refused with a one-line CertificateRequestError.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from scm.keys import SoftwareKeystore
from scm.pki import CertificateRequestError, LocalCA, check_svid
from tests.spiffe_check import assert_spiffe_svid

TRUST_DOMAIN = "example.org"
SUFFIX = "svc.example.org"
DAY = datetime.timedelta(days=1)

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
# Generated once: key generation would dominate the run. (allowed?, key)
KEYS: list[tuple[bool, PrivateKey]] = [
    (True, ec.generate_private_key(ec.SECP256R1())),
    (True, ec.generate_private_key(ec.SECP384R1())),
    (True, rsa.generate_private_key(65537, 2048)),
    (True, rsa.generate_private_key(65537, 3072)),
    (True, rsa.generate_private_key(65537, 4096)),
    (False, ec.generate_private_key(ec.SECP521R1())),
    (False, ec.generate_private_key(ec.SECP256K1())),
    (False, rsa.generate_private_key(65537, 1024)),
    (False, rsa.generate_private_key(65537, 1536)),
]


@dataclass(frozen=True)
class Part:
    """A SAN or an extension of a generated CSR, and whether the policy allows it."""

    allowed: bool
    value: x509.GeneralName | x509.ExtensionType


segment = st.from_regex(r"[A-Za-z0-9._-]{1,12}", fullmatch=True).filter(
    lambda s: s not in (".", "..")
)
path = st.lists(segment, min_size=1, max_size=4).map("/".join)
label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)


def _uri(value: str, allowed: bool) -> Part:
    return Part(allowed, x509.UniformResourceIdentifier(value))


good_uri = path.map(lambda p: _uri(f"spiffe://{TRUST_DOMAIN}/{p}", True))
foreign_uri = path.map(lambda p: _uri(f"spiffe://other.org/{p}", False))
broken_uri = st.tuples(
    path,
    st.sampled_from(
        [
            "spiffe://example.org/{}?x#y",
            "spiffe://example.org/{}#frag",
            "spiffe://example.org:443/{}",
            "spiffe://root@example.org/{}",
            "SPIFFE://example.org/{}",
            "https://example.org/{}",
            "spiffe://example.org/{}/",
            "spiffe://example.org//{}",
            "spiffe://example.org/../{}",
            "spiffe://EXAMPLE.org/{}",
            "spiffe://example.org/{}/a%20b",
        ]
    ),
).map(lambda pair: _uri(pair[1].format(pair[0]), False))
good_dns = st.lists(label, min_size=1, max_size=3).map(
    lambda labels: Part(True, x509.DNSName(".".join([*labels, SUFFIX])))
)
bad_dns = st.one_of(
    st.lists(label, min_size=1, max_size=3).map(lambda labels: ".".join([*labels, "evil.com"])),
    label.map(lambda x: f"{x}.{SUFFIX}.evil.com"),
    st.just(f"*.{SUFFIX}"),
    st.just("www.google.com"),
).map(lambda name: Part(False, x509.DNSName(name)))
other_san = st.one_of(
    st.just(Part(False, x509.RFC822Name("admin@example.org"))),
    st.just(Part(False, x509.IPAddress(ipaddress.ip_address("10.0.0.1")))),
)
san = st.one_of(good_uri, foreign_uri, broken_uri, good_dns, bad_dns, other_san)

LEAF_EKUS = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
OTHER_EKUS = [ExtendedKeyUsageOID.CODE_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION]
eku = st.lists(st.sampled_from(LEAF_EKUS + OTHER_EKUS), min_size=1, max_size=3, unique=True).map(
    lambda oids: Part(not set(oids) & set(OTHER_EKUS), x509.ExtendedKeyUsage(oids))
)
basic_constraints = st.booleans().map(
    lambda ca: Part(not ca, x509.BasicConstraints(ca=ca, path_length=None))
)
key_usage = st.booleans().map(
    lambda sign: Part(
        not sign, x509.KeyUsage(True, False, False, False, False, sign, sign, False, False)
    )
)
subject = st.lists(
    st.tuples(
        st.sampled_from([NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME]),
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=20),
    ),
    max_size=3,
).map(lambda pairs: x509.Name([x509.NameAttribute(oid, value) for oid, value in pairs]))


@st.composite
def csrs(draw: st.DrawFn) -> tuple[bool, x509.CertificateSigningRequest, PrivateKey]:
    """A CSR and whether the policy must sign it."""
    # Half the draws start from a conforming shape, so that signing is exercised as much
    # as refusing.
    key_allowed, key = draw(st.sampled_from([k for k in KEYS if k[0]]) | st.sampled_from(KEYS))
    conforming = st.tuples(good_uri, st.lists(good_dns, max_size=2)).map(
        lambda pair: [pair[0], *pair[1]]
    )
    sans = draw(conforming | st.lists(san, max_size=4))
    extensions = [
        part
        for part in (
            draw(st.none() | eku),
            draw(st.none() | basic_constraints),
            draw(st.none() | key_usage),
        )
        if part is not None
    ]
    builder = x509.CertificateSigningRequestBuilder().subject_name(draw(subject))
    if sans:
        general_names = [p.value for p in sans if isinstance(p.value, x509.GeneralName)]
        builder = builder.add_extension(x509.SubjectAlternativeName(general_names), critical=False)
    for part in extensions:
        assert isinstance(part.value, x509.ExtensionType)
        builder = builder.add_extension(part.value, critical=False)
    uris = [p for p in sans if isinstance(p.value, x509.UniformResourceIdentifier)]
    allowed = (
        key_allowed
        and len(uris) == 1
        and all(p.allowed for p in sans)
        and all(p.allowed for p in extensions)
    )
    return allowed, builder.sign(key, hashes.SHA256()), key


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    state = tmp_path_factory.mktemp("ca")
    LocalCA.init(state, keystore := SoftwareKeystore(), TRUST_DOMAIN)
    return LocalCA.load(state, keystore, dns_suffixes=(SUFFIX,), max_ttl=DAY)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=csrs(), ttl_hours=st.integers(min_value=1, max_value=24 * 400))
def test_the_ca_signs_exactly_the_csrs_the_policy_allows(
    ca: LocalCA, case: tuple[bool, x509.CertificateSigningRequest, PrivateKey], ttl_hours: int
) -> None:
    allowed, csr, key = case
    event("signed" if allowed else "refused")
    if not allowed:
        with pytest.raises(CertificateRequestError) as caught:
            ca.issue(csr, datetime.timedelta(hours=ttl_hours))
        assert str(caught.value) and "\n" not in str(caught.value)
        return
    issued = ca.issue(csr, datetime.timedelta(hours=ttl_hours))
    leaf = issued.leaf
    asked = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    [spiffe_id] = asked.get_values_for_type(x509.UniformResourceIdentifier)
    dns = {name.lower() for name in asked.get_values_for_type(x509.DNSName)}
    got = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert got.get_values_for_type(x509.UniformResourceIdentifier) == [spiffe_id]
    assert set(got.get_values_for_type(x509.DNSName)) == dns
    assert leaf.subject == x509.Name([])
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc <= DAY + datetime.timedelta(
        minutes=5
    )
    check_svid(issued.chain, ca.trust_bundle(), spiffe_id, key.public_key(), dns)
    assert_spiffe_svid(issued.chain, key, ca.trust_bundle(), spiffe_id)
