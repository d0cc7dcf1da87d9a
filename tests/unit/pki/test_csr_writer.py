"""CSRs that scm writes itself (attested CSRs): the same bytes as cryptography's, read back
identically by cryptography and by OpenSSL, and no private API of cryptography involved."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from scm.pki import WorkloadIdentity, build_csr, der
from scm.pki.csr_evidence import EVIDENCE_OID, CsrEvidence, csr_evidence, timestamped_nonce
from scm.pki.csr_writer import request_info
from scm.pki.identity import signature_hash
from scm.pki.svid import LEAF_EXTENDED_KEY_USAGE, leaf_key_usage

SRC = Path(__file__).parents[3] / "src"
KEYS = {
    "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "rsa2048": lambda: rsa.generate_private_key(65537, 2048),
}
IDENTITY = WorkloadIdentity("example.org", "default", "web", ("web.example.org", "a.example"))
# Long enough for a two-octet length, as real quotes (about 5 KB) are.
EVIDENCE = CsrEvidence(quote=bytes(range(256)) * 20 + b"end", nonce=timestamped_nonce(1.7e9))


def _extensions(key):
    sans = [x509.UniformResourceIdentifier(IDENTITY.spiffe_id)]
    sans += [x509.DNSName(name) for name in IDENTITY.dns_names]
    return [
        (x509.SubjectAlternativeName(sans), True),
        (leaf_key_usage(key.public_key()), True),
        (LEAF_EXTENDED_KEY_USAGE, False),
    ]


@pytest.mark.parametrize("kind", sorted(KEYS))
def test_request_info_is_byte_for_byte_cryptography_s(kind) -> None:
    key = KEYS[kind]()
    extensions = _extensions(key)
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    for value, critical in extensions:
        builder = builder.add_extension(value, critical=critical)
    theirs = builder.sign(key, signature_hash(key))
    ours = request_info(x509.Name([]), key.public_key(), extensions, [])
    assert ours == theirs.tbs_certrequest_bytes
    named = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "x")])
    builder = x509.CertificateSigningRequestBuilder().subject_name(named)
    assert request_info(named, key.public_key(), [], []) == (
        builder.sign(key, signature_hash(key)).tbs_certrequest_bytes
    )


@pytest.mark.parametrize("kind", sorted(KEYS))
def test_attested_csr_reads_back_identically_in_cryptography(kind) -> None:
    key = KEYS[kind]()
    plain = build_csr(IDENTITY, key)
    attested = build_csr(IDENTITY, key, EVIDENCE)
    assert attested.is_signature_valid
    assert attested.signature_algorithm_oid == plain.signature_algorithm_oid
    assert attested.signature_hash_algorithm.name == plain.signature_hash_algorithm.name
    assert attested.public_key() == key.public_key()
    assert attested.subject == plain.subject
    assert list(attested.extensions) == list(plain.extensions)
    assert csr_evidence(attested) == EVIDENCE
    assert csr_evidence(plain) is None


def test_openssl_verifies_it_and_sees_an_octet_string(tmp_path: Path) -> None:
    key = KEYS["p256"]()
    csr = build_csr(IDENTITY, key, EVIDENCE)
    path = tmp_path / "csr.der"
    path.write_bytes(csr.public_bytes(serialization.Encoding.DER))
    verify = subprocess.run(
        ["openssl", "req", "-inform", "DER", "-in", str(path), "-verify", "-noout", "-text"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stderr
    assert "verify OK" in verify.stdout + verify.stderr
    assert f"URI:{IDENTITY.spiffe_id}" in verify.stdout
    parsed = subprocess.run(
        ["openssl", "asn1parse", "-inform", "DER", "-in", str(path)],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    # The attribute: its OID, a SET, and in it one OCTET STRING holding nonce || quote.
    pattern = (
        re.escape(EVIDENCE_OID.dotted_string)
        + r"\n.*cons: SET\s*\n.*prim: OCTET STRING\s*\[HEX DUMP\]:([0-9A-F]+)"
    )
    match = re.search(pattern, parsed)
    assert match is not None, parsed
    assert bytes.fromhex(match.group(1)) == EVIDENCE.nonce + EVIDENCE.quote


@pytest.mark.parametrize(
    ("dotted", "encoded"),
    [
        ("1.2.840.113549.1.9.14", "06092a864886f70d01090e"),
        ("2.5.29.17", "0603551d11"),
        ("2.999.3", "0603883703"),  # the first subidentifier (1079) takes two octets
    ],
)
def test_object_identifiers(dotted, encoded) -> None:
    assert der.object_identifier(dotted).hex() == encoded
    assert x509.ObjectIdentifier(dotted).dotted_string == dotted


@pytest.mark.parametrize("bad", ["1", "3.1", "1.40", "1.-2.3", "1.x"])
def test_not_an_object_identifier(bad) -> None:
    with pytest.raises(ValueError):
        der.object_identifier(bad)


@pytest.mark.parametrize(
    ("size", "header"),
    [(0, "0400"), (127, "047f"), (128, "048180"), (255, "0481ff"), (256, "04820100"),
     (70000, "0483011170")],
)  # fmt: skip
def test_lengths_short_and_long_form(size, header) -> None:
    encoded = der.octet_string(b"\x00" * size)
    assert encoded.hex().startswith(header) and len(encoded) == len(header) // 2 + size


def test_integers_and_set_order() -> None:
    assert [der.integer(n).hex() for n in (0, 127, 128, 256)] == [
        "020100", "02017f", "02020080", "02020100",
    ]  # fmt: skip
    assert der.set_of(b"\x04\x01b", b"\x04\x01a") == bytes.fromhex("3106") + b"\x04\x01a\x04\x01b"


def test_no_private_attribute_of_cryptography_is_used() -> None:
    uses = []
    for path in sorted(SRC.rglob("*.py")):
        if "_proto" in path.parts:
            continue
        text = path.read_text()
        for needle in ("_ASN1Type", "_tag=", "._mgf", "._salt_length", "_MaxLength",
                       "._algorithm", "_create_unverified_context"):  # fmt: skip
            if needle in text:
                uses.append(f"{path.relative_to(SRC)}: {needle}")
    assert uses == []
