"""Attested SDS issuance end to end: TEE evidence in every CSR, checked by the CA's gate.

The TEE is a configfs-tsm entry that answers like a TDX guest's (``LiveTsmEntry``: a real TDX
quote whose REPORTDATA is what the issuer wrote). Its signature cannot verify after that, so
DCAP verification is replaced by ``accept_any_quote``, a stand-in, as in the attested-CSR
tests; every other check of the gate is real: CSR signature, freshness, the key binding
(REPORTDATA = SHA-256(the CSR key's SPKI) || nonce) and the single-use nonce ledger. The CA
behind the gate is the real local CA with its key in SoftHSM.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from scm.errors import UnavailableError
from scm.keys import Pkcs11Keystore
from scm.pki import IssuedCertificate, LocalCA
from scm.pki.attested import AttestationGate, EvidenceRejectedError
from scm.pki.csr_evidence import csr_evidence
from scm.pki.nonce_ledger import NonceLedger
from scm.sds.attested import TeeEvidence
from scm.sds.issuer import CertificateIssuer, IssuanceError
from scm.sds.leafkeys import SOFTWARE
from tests.attestation_cases import case
from tests.integration.sds.issuing import make_issuer
from tests.tee_trees import LiveTsmEntry
from tests.unit.pki.test_attested import accept_any_quote

MAX_AGE = datetime.timedelta(minutes=15)


class RecordingGate:
    """The gate, keeping every CSR it was sent (to replay one)."""

    def __init__(self, gate: AttestationGate) -> None:
        self.gate = gate
        self.csrs: list[x509.CertificateSigningRequest] = []

    async def sign(
        self, csr: x509.CertificateSigningRequest, ttl: datetime.timedelta
    ) -> IssuedCertificate:
        self.csrs.append(csr)
        return await self.gate.sign(csr, ttl)

    def trust_bundle(self) -> list[x509.Certificate]:
        return self.gate.trust_bundle()


@pytest.fixture
def tee(tmp_path: Path) -> Iterator[LiveTsmEntry]:
    entry = LiveTsmEntry(tmp_path / "tee", case("tdx_v4_uptodate").quote)
    yield entry
    entry.close()


@pytest.fixture
def gate(local_ca: LocalCA, tmp_path: Path) -> RecordingGate:
    ledger = NonceLedger.in_state_dir(tmp_path)
    return RecordingGate(AttestationGate(local_ca, accept_any_quote, MAX_AGE, nonces=ledger))


def _issuer(
    tmp_path: Path, keystore: Pkcs11Keystore, gate: RecordingGate, tee_root: Path | None
) -> CertificateIssuer:
    issuer = make_issuer(tmp_path, keystore, gate, SOFTWARE)  # type: ignore[arg-type]
    if tee_root is not None:
        issuer.evidence = TeeEvidence(tee_root, tsm_entry="scm-test")
    return issuer


def test_first_issuance_and_every_renewal_carry_fresh_evidence_for_the_new_key(
    tmp_path: Path, token_keystore: Pkcs11Keystore, gate: RecordingGate, tee: LiveTsmEntry
) -> None:
    issuer = _issuer(tmp_path, token_keystore, gate, tmp_path / "tee")
    first = asyncio.run(issuer.issue())
    renewed = asyncio.run(issuer.issue())
    assert first.key_label != renewed.key_label
    assert len(tee.requests) == 2 and tee.requests[0] != tee.requests[1]
    nonces = set()
    for csr, record in zip(gate.csrs, (first, renewed), strict=True):
        evidence = csr_evidence(csr)
        assert evidence is not None
        nonces.add(evidence.nonce)
        # The certificate is for the key the evidence binds.
        assert record.chain[0].public_key() == csr.public_key()
    assert len(nonces) == 2
    assert issuer.health.status()["last_error"] is None


def test_a_replayed_csr_is_refused(
    tmp_path: Path, token_keystore: Pkcs11Keystore, gate: RecordingGate, tee: LiveTsmEntry
) -> None:
    issuer = _issuer(tmp_path, token_keystore, gate, tmp_path / "tee")
    asyncio.run(issuer.issue())
    with pytest.raises(EvidenceRejectedError) as refused:
        asyncio.run(gate.gate.sign(gate.csrs[0], datetime.timedelta(hours=1)))
    assert refused.value.reason == "nonce_replayed"


def test_without_evidence_a_gated_ca_refuses_and_status_says_why(
    tmp_path: Path, token_keystore: Pkcs11Keystore, gate: RecordingGate
) -> None:
    issuer = _issuer(tmp_path, token_keystore, gate, None)
    with pytest.raises(IssuanceError, match="no_evidence"):
        asyncio.run(issuer.issue())
    assert "no_evidence" in (issuer.health.status()["last_error"] or "")


def test_a_tee_without_evidence_is_a_clear_issuance_failure(
    tmp_path: Path, token_keystore: Pkcs11Keystore, gate: RecordingGate
) -> None:
    empty = tmp_path / "not-a-tee"
    empty.mkdir()
    issuer = _issuer(tmp_path, token_keystore, gate, empty)
    with pytest.raises(UnavailableError):
        asyncio.run(issuer.issue())
    status = issuer.health.status()
    assert "no evidence from the TEE below" in status["last_error"]
    assert status["consecutive_failures"] == 1
    assert gate.csrs == []  # nothing reached the CA
    assert issuer.keys.keystore.list() == []  # and no key was left behind
