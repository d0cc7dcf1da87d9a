"""Attested CSRs and the CA gate: real quotes and collateral, a real token for the CA key.

No TEE runs here and a real quote's REPORTDATA cannot be chosen, so no real quote binds a key
made in a test. What is real: every DCAP verdict on the fixture quotes (at their ``verify_at``,
with their collateral), and the evidence collected through configfs-tsm and Gramine trees whose
output is a real quote. Only the tests of the accept path and of the binding rules replace DCAP
verification with ``accept_any_quote``, on quotes whose REPORTDATA the test patched in.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from scm.attestation import Verdict, parse_quote, tcb
from scm.attestation.errors import PolicyError
from scm.attestation.evidence import GRAMINE_DIR, TSM_REPORT_DIR, key_report_data
from scm.attestation.pccs import AttestationSettings
from scm.attestation.policy import DEFAULT_POLICY, Policy
from scm.errors import ConfigError
from scm.keys import KeyType, Pkcs11Keystore
from scm.pki import CASettings, CertificateRequestError, LocalCA, WorkloadIdentity, build_csr
from scm.pki.attested import (
    AttestationGate,
    EvidenceRejectedError,
    gate_from_settings,
    quote_appraiser,
)
from scm.pki.csr_evidence import (
    EVIDENCE_OID,
    CsrEvidence,
    collect_evidence,
    csr_evidence,
    timestamped_nonce,
)
from scm.pki.nonce_ledger import NonceLedger
from tests.attestation_cases import DCAP_QVL_ERRORS, FIXTURES, Case, case, case_names
from tests.tee_trees import TD_REPORT_DATA, gramine_tree, tsm_tree

DAY = datetime.timedelta(days=1)
MAX_AGE = datetime.timedelta(minutes=15)
IDENTITY = WorkloadIdentity("example.org", "shop", "web")
# Every TCB status but Revoked, so each genuine quote reaches the key-binding check.
LENIENT = Policy(accepted_statuses=tuple(s for s in tcb.STATUSES if s != tcb.REVOKED))


@pytest.fixture
def ca(tmp_path: Path, token_keystore: Pkcs11Keystore, label: str) -> LocalCA:
    return LocalCA.init(tmp_path, token_keystore, "example.org", KeyType.EC_P256, label)


def _dcap_gate(ca: LocalCA, c: Case, policy: Policy = LENIENT) -> AttestationGate:
    """The CA's real checks, at the case's verify_at, with its collateral."""
    appraiser = quote_appraiser(policy, lambda _quote, _now: c.collateral)
    return AttestationGate(ca, appraiser, MAX_AGE, clock=lambda: c.verify_at)


def accept_any_quote(raw: bytes, _now: float) -> Verdict:
    """Stands in for DCAP verification where the quote cannot be genuine (patched REPORTDATA)."""
    return Verdict(status=tcb.UP_TO_DATE, quote=parse_quote(raw))


def _seam_gate(ca: LocalCA, now: float) -> AttestationGate:
    return AttestationGate(ca, accept_any_quote, MAX_AGE, clock=lambda: now)


def _bound_quote(public_key: ec.EllipticCurvePublicKey, nonce: bytes) -> bytes:
    """A real TDX quote with REPORTDATA patched to bind ``public_key``: its signature breaks."""
    raw = bytearray(case("tdx_v4_uptodate").quote)
    raw[TD_REPORT_DATA] = key_report_data(public_key, nonce)
    return bytes(raw)


def _csr(
    key: ec.EllipticCurvePrivateKey, evidence: CsrEvidence | None
) -> x509.CertificateSigningRequest:
    """``build_csr`` and a PEM round trip, as the CA receives it."""
    pem = build_csr(IDENTITY, key, evidence).public_bytes(serialization.Encoding.PEM)
    return x509.load_pem_x509_csr(pem)


def _rejection(gate: AttestationGate, csr: x509.CertificateSigningRequest) -> EvidenceRejectedError:
    with pytest.raises(EvidenceRejectedError) as info:
        asyncio.run(gate.sign(csr, DAY))
    assert "\n" not in str(info.value)
    return info.value


@pytest.mark.parametrize("name", case_names())
def test_real_quotes_verify_but_do_not_bind_the_csr_key(
    name: str, ca: LocalCA, tmp_path: Path
) -> None:
    c = case(name)
    bundle = tmp_path / "collateral.json"
    bundle.write_text(c.collateral_json)
    policy = tmp_path / "policy.toml"
    policy.write_text(f"accepted_statuses = {json.dumps(list(LENIENT.accepted_statuses))}\n")
    settings = CASettings(
        require_attestation=True, attestation_policy=policy, attestation_collateral=bundle
    )
    gate = gate_from_settings(
        ca, settings, AttestationSettings(), tmp_path, clock=lambda: c.verify_at
    )
    assert isinstance(gate, AttestationGate)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = _csr(key, CsrEvidence(c.quote, timestamped_nonce(c.verify_at)))
    rejected = _rejection(gate, csr)
    # Cases dcap-qvl rejects fail verification; every other quote is genuine and acceptable,
    # so what stops it is that its REPORTDATA names some other key.
    expected = DCAP_QVL_ERRORS.get(c.expected.get("error", ""), "key_not_bound")
    assert rejected.reason == expected, str(rejected)


def test_the_default_policy_names_the_failed_rule(ca: LocalCA) -> None:
    c = case("sgx_v3_processor_cfg_swhardening")
    csr = _csr(
        ec.generate_private_key(ec.SECP256R1()),
        CsrEvidence(c.quote, timestamped_nonce(c.verify_at)),
    )
    rejected = _rejection(_dcap_gate(ca, c, DEFAULT_POLICY), csr)
    assert (rejected.reason, rejected.rule) == ("policy_rejected", "accepted_statuses")
    assert "policy_rejected [accepted_statuses]" in str(rejected)


@pytest.mark.parametrize(
    ("case_name", "make_tree", "written"),
    [
        ("tdx_v4_uptodate", tsm_tree, TSM_REPORT_DIR / "scm-test" / "inblob"),
        ("sgx_v3_processor_cfg_swhardening", gramine_tree, GRAMINE_DIR / "user_report_data"),
    ],
    ids=["configfs-tsm", "gramine"],
)
def test_evidence_from_a_tee_tree_binds_the_key_and_survives_the_csr(
    case_name: str,
    make_tree: Callable[[Path, bytes], Path],
    written: Path,
    ca: LocalCA,
    tmp_path: Path,
) -> None:
    c = case(case_name)
    root = make_tree(tmp_path / "tee", c.quote)
    key = ec.generate_private_key(ec.SECP256R1())
    evidence = collect_evidence(key.public_key(), root, now=c.verify_at, tsm_entry="scm-test")
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # What the TEE was asked to sign: SHA-256(SPKI DER) || nonce, the nonce time-stamped.
    assert (root / written).read_bytes() == hashlib.sha256(spki).digest() + evidence.nonce
    assert evidence.quote == c.quote
    assert evidence.produced_at.timestamp() == c.verify_at
    csr = _csr(key, evidence)
    assert csr.is_signature_valid and csr_evidence(csr) == evidence
    # The tree cannot make its quote reflect what was written, so the genuine quote is refused.
    assert _rejection(_dcap_gate(ca, c), csr).reason == "key_not_bound"


def test_a_quote_that_binds_the_csr_key_gets_a_certificate(ca: LocalCA) -> None:
    now = case("tdx_v4_uptodate").verify_at
    key = ec.generate_private_key(ec.SECP256R1())
    nonce = timestamped_nonce(now)
    csr = _csr(key, CsrEvidence(_bound_quote(key.public_key(), nonce), nonce))
    issued = asyncio.run(_seam_gate(ca, now).sign(csr, DAY))
    issued.leaf.verify_directly_issued_by(ca.certificate)
    assert issued.leaf.public_key() == key.public_key()


def test_a_patched_reportdata_fails_real_verification(ca: LocalCA) -> None:
    c = case("tdx_v4_uptodate")
    key = ec.generate_private_key(ec.SECP256R1())
    nonce = timestamped_nonce(c.verify_at)
    csr = _csr(key, CsrEvidence(_bound_quote(key.public_key(), nonce), nonce))
    assert _rejection(_dcap_gate(ca, c), csr).reason == "quote_signature_invalid"


def test_the_binding_names_this_key_and_this_nonce(ca: LocalCA) -> None:
    now = case("tdx_v4_uptodate").verify_at
    key, other = (ec.generate_private_key(ec.SECP256R1()) for _ in range(2))
    nonce = timestamped_nonce(now)
    quote = _bound_quote(key.public_key(), nonce)
    gate = _seam_gate(ca, now)
    # Evidence lifted from a CSR for `key` into a CSR for another key.
    assert _rejection(gate, _csr(other, CsrEvidence(quote, nonce))).reason == "key_not_bound"
    # The right key, but a nonce other than the one REPORTDATA holds.
    other_nonce = timestamped_nonce(now)
    assert _rejection(gate, _csr(key, CsrEvidence(quote, other_nonce))).reason == "key_not_bound"
    # Those refusals did not spend the nonce: the genuine request still gets its certificate.
    asyncio.run(gate.sign(_csr(key, CsrEvidence(quote, nonce)), DAY))


@pytest.mark.parametrize(
    ("age", "reason"),
    [
        (MAX_AGE + datetime.timedelta(seconds=1), "evidence_stale"),
        (-datetime.timedelta(minutes=6), "evidence_from_the_future"),
    ],
    ids=["stale", "future"],
)
def test_evidence_outside_the_freshness_window_is_refused(
    age: datetime.timedelta, reason: str, ca: LocalCA
) -> None:
    now = case("tdx_v4_uptodate").verify_at
    key = ec.generate_private_key(ec.SECP256R1())
    nonce = timestamped_nonce(now - age.total_seconds())
    csr = _csr(key, CsrEvidence(_bound_quote(key.public_key(), nonce), nonce))
    assert _rejection(_seam_gate(ca, now), csr).reason == reason
    # The same evidence at the time it was made is accepted.
    asyncio.run(_seam_gate(ca, now - age.total_seconds()).sign(csr, DAY))


def test_no_evidence_is_refused_when_required_and_fine_when_not(
    ca: LocalCA, tmp_path: Path
) -> None:
    csr = _csr(ec.generate_private_key(ec.SECP256R1()), None)
    assert csr_evidence(csr) is None
    assert _rejection(_dcap_gate(ca, case("tdx_v4_uptodate")), csr).reason == "no_evidence"
    not_required = gate_from_settings(ca, CASettings(), AttestationSettings(), tmp_path)
    assert not_required is ca
    asyncio.run(not_required.sign(csr, DAY)).leaf.verify_directly_issued_by(ca.certificate)


def test_tampered_evidence_is_refused(ca: LocalCA) -> None:
    c = case("tdx_v4_uptodate")
    key = ec.generate_private_key(ec.SECP256R1())
    evidence = CsrEvidence(c.quote, timestamped_nonce(c.verify_at))
    gate = _dcap_gate(ca, c)
    # Changed after signing: the CSR's signature covers the attribute.
    der = bytearray(_csr(key, evidence).public_bytes(serialization.Encoding.DER))
    at = der.find(c.quote[100:132])
    der[at] ^= 0x01
    with pytest.raises(CertificateRequestError, match="signature does not verify"):
        asyncio.run(gate.sign(x509.load_der_x509_csr(bytes(der)), DAY))
    # Changed and re-signed by the CSR's key: the quote itself no longer verifies.
    flipped = bytearray(c.quote)
    flipped[100] ^= 0x01
    csr = _csr(key, dataclasses.replace(evidence, quote=bytes(flipped)))
    assert _rejection(gate, csr).reason == "quote_signature_invalid"
    truncated = _csr(key, dataclasses.replace(evidence, quote=c.quote[:40]))
    assert _rejection(gate, truncated).reason == "malformed_quote"


def test_an_attribute_too_short_to_hold_a_nonce_is_malformed(ca: LocalCA) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_attribute(EVIDENCE_OID, b"short")
        .sign(key, hashes.SHA256())
    )
    assert _rejection(_dcap_gate(ca, case("tdx_v4_uptodate")), csr).reason == "malformed_evidence"


def test_misconfigured_requirement_is_a_config_error(ca: LocalCA, tmp_path: Path) -> None:
    missing = CASettings(require_attestation=True, attestation_collateral=tmp_path / "none.json")
    with pytest.raises(ConfigError, match=r"ca\.attestation_collateral"):
        gate_from_settings(ca, missing, AttestationSettings(), tmp_path)
    (tmp_path / "policy.toml").write_text("allow_everything = true\n")
    bad_policy = CASettings(
        require_attestation=True,
        attestation_policy=tmp_path / "policy.toml",
        attestation_collateral=FIXTURES / case("tdx_v4_uptodate").entry["collateral"],
    )
    with pytest.raises(PolicyError, match="allow_everything"):
        gate_from_settings(ca, bad_policy, AttestationSettings(), tmp_path)


def test_a_replayed_csr_is_refused_also_after_a_restart(ca: LocalCA, tmp_path: Path) -> None:
    now = case("tdx_v4_uptodate").verify_at
    key = ec.generate_private_key(ec.SECP256R1())
    nonce = timestamped_nonce(now)
    csr = _csr(key, CsrEvidence(_bound_quote(key.public_key(), nonce), nonce))
    state = tmp_path / "ca-state"
    state.mkdir()

    def gate(at: float) -> AttestationGate:
        ledger = NonceLedger.in_state_dir(state)
        return AttestationGate(ca, accept_any_quote, MAX_AGE, lambda: at, ledger)

    first = gate(now)
    asyncio.run(first.sign(csr, DAY))
    assert _rejection(first, csr).reason == "nonce_replayed"
    # A new CA process over the same state directory (a restart, or a second replica).
    assert _rejection(gate(now + 60), csr).reason == "nonce_replayed"
    # Fresh evidence for the same key is a new request, not a replay.
    nonce2 = timestamped_nonce(now + 1)
    fresh = _csr(key, CsrEvidence(_bound_quote(key.public_key(), nonce2), nonce2))
    asyncio.run(gate(now + 60).sign(fresh, DAY))


def test_gate_from_settings_records_nonces_under_the_state_directory(
    ca: LocalCA, tmp_path: Path
) -> None:
    c = case("tdx_v4_uptodate")
    bundle = tmp_path / "collateral.json"
    bundle.write_text(c.collateral_json)
    settings = CASettings(require_attestation=True, attestation_collateral=bundle)
    gate = gate_from_settings(ca, settings, AttestationSettings(), tmp_path)
    assert isinstance(gate, AttestationGate)
    assert gate.nonces.path == tmp_path / "attestation-nonces"
