"""Attested certificates: a CA that signs only CSRs whose key provably lives in an accepted TEE.

With ``[ca] require_attestation = true`` the CA takes the evidence out of the CSR
(:mod:`scm.pki.csr_evidence`) and, before its own SAN policy and signing, checks in this order:

1. the CSR's signature (so the evidence, an attribute, was signed by the CSR's key);
2. the CSR carries evidence at all;
3. freshness: the nonce's time stamp is at most ``attestation_max_age`` old and not in the future
   beyond the CA's clock skew;
4. the quote: DCAP verification against collateral (an offline bundle, ``attestation_collateral``,
   or the PCCS of ``[attestation]`` with its cache) and the appraisal policy
   (``attestation_policy``, default: UpToDate or SWHardeningNeeded, no debug);
5. the binding: REPORTDATA = SHA-256(the CSR's SubjectPublicKeyInfo DER) || nonce;
6. single use: the nonce is recorded (:mod:`scm.pki.nonce_ledger`, under the state directory)
   until its evidence goes stale; a second CSR with the same nonce is a replay.

A rejection is one line naming the check: a verdict reason code (with the policy rule), or
``no_evidence``, ``malformed_evidence``, ``evidence_stale``, ``evidence_from_the_future``,
``key_not_bound``, ``nonce_replayed``, ``nonce_ledger_full``.

What this protects against: a key made outside an accepted TEE (nothing else can get a quote
whose REPORTDATA names it), and a genuine quote lifted from another CSR (it names that CSR's key;
reusing that key needs its private key to sign the CSR). The nonce is chosen in the TEE and
carries its time, so evidence stops working ``attestation_max_age`` after it was made, and
verification runs against collateral that is current at issuance.

A nonce is claimed only once every other check passed, so a rejected request does not use it
up; if signing then fails, the nonce is spent and the client makes new evidence.

What it does not: the time stamp comes from the TEE's clock, which the host influences; a
CA-issued challenge would close that gap but needs a round trip from the TEE to the CA before
the CSR exists, which ``scm ca issue --csr FILE`` does not have. And the quote says which
code holds the key only if the policy pins measurements (``[sgx]`` MRENCLAVE/MRSIGNER or
``[tdx]`` MRTD/RTMRs): without them any genuine enclave or TD on an accepted TCB passes.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from scm.attestation import Collateral, Quote, QuoteFormatError, Verdict, parse_quote
from scm.attestation.evidence import check_key_binding
from scm.attestation.pccs import AttestationSettings, PccsClient, collateral_cache_dir
from scm.attestation.policy import DEFAULT_POLICY, Policy, appraise
from scm.errors import ConfigError
from scm.pki.authority import CertificateAuthority, IssuedCertificate
from scm.pki.csr_evidence import CsrEvidence, csr_evidence
from scm.pki.errors import CertificateRequestError
from scm.pki.nonce_ledger import NonceLedger, NonceLedgerFull
from scm.pki.ttl import parse_ttl

# Evidence may claim a time this far ahead of the CA's clock (the two clocks are not one).
CLOCK_SKEW = datetime.timedelta(minutes=5)

# Verifies and appraises a quote at a time (Unix seconds). The CA's is DCAP with a policy;
# tests inject their own only where no real quote can exist (see tests/unit/pki).
QuoteAppraiser = Callable[[bytes, float], Verdict]
CollateralSource = Callable[[Quote, float], Collateral]


@dataclass(frozen=True)
class CAAttestationSettings:
    """The attestation keys of the ``[ca]`` table (``SCM_CA_*``), part of ``CASettings``."""

    require_attestation: bool = False
    attestation_policy: Path | None = None  # TOML appraisal policy; default: DEFAULT_POLICY
    attestation_collateral: Path | None = None  # offline bundle; default: the PCCS client
    attestation_max_age: str = "15m"


class EvidenceRejectedError(CertificateRequestError):
    """The CSR's attestation evidence is missing or fails a check; ``reason`` names which."""

    def __init__(self, reason: str, message: str, rule: str | None = None) -> None:
        check = f"{reason} [{rule}]" if rule else reason
        super().__init__(f"attestation evidence rejected: {check}: {message}")
        self.reason = reason
        self.rule = rule


class AttestationGate:
    """A certificate authority in front of another that first checks the CSR's evidence."""

    def __init__(
        self,
        inner: CertificateAuthority,
        appraise_quote: QuoteAppraiser,
        max_age: datetime.timedelta,
        clock: Callable[[], float] = time.time,
        nonces: NonceLedger | None = None,
    ) -> None:
        self.inner = inner
        self._appraise = appraise_quote
        self.max_age = max_age
        self._clock = clock
        # Without a state directory replays are refused within this process only.
        self.nonces = nonces if nonces is not None else NonceLedger(None)

    def check(self, csr: x509.CertificateSigningRequest) -> Verdict:
        """The accepting verdict for the CSR's quote; EvidenceRejectedError otherwise."""
        if not csr.is_signature_valid:
            raise CertificateRequestError("the CSR's signature does not verify")
        try:
            evidence = csr_evidence(csr)
        except CertificateRequestError as exc:
            raise EvidenceRejectedError("malformed_evidence", str(exc)) from None
        if evidence is None:
            raise EvidenceRejectedError("no_evidence", "the CA requires it and the CSR has none")
        now = self._clock()
        self._check_fresh(evidence, datetime.datetime.fromtimestamp(now, datetime.UTC))
        verdict = self._appraise(evidence.quote, now)
        if not verdict.ok or verdict.quote is None:
            raise EvidenceRejectedError(verdict.reason or "rejected", verdict.message, verdict.rule)
        if not check_key_binding(verdict.quote, csr.public_key(), evidence.nonce):
            raise EvidenceRejectedError(
                "key_not_bound",
                "the quote's REPORTDATA is not SHA-256 of the CSR's public key and the nonce",
            )
        self._claim(evidence, now)
        return verdict

    def _claim(self, evidence: CsrEvidence, now: float) -> None:
        expires = (evidence.produced_at + self.max_age).timestamp()
        try:
            fresh = self.nonces.claim(evidence.nonce, expires, now)
        except NonceLedgerFull as exc:
            raise EvidenceRejectedError("nonce_ledger_full", str(exc)) from None
        if not fresh:
            raise EvidenceRejectedError(
                "nonce_replayed", "this evidence's nonce was already used for a certificate"
            )

    def _check_fresh(self, evidence: CsrEvidence, now: datetime.datetime) -> None:
        made = evidence.produced_at
        if made > now + CLOCK_SKEW:
            raise EvidenceRejectedError(
                "evidence_from_the_future",
                f"made at {made:%Y-%m-%dT%H:%M:%SZ}, the CA's clock says {now:%Y-%m-%dT%H:%M:%SZ}",
            )
        if now - made > self.max_age:
            raise EvidenceRejectedError(
                "evidence_stale",
                f"made at {made:%Y-%m-%dT%H:%M:%SZ}, more than {self.max_age} ago "
                "(ca.attestation_max_age)",
            )

    async def sign(
        self, csr: x509.CertificateSigningRequest, ttl: datetime.timedelta
    ) -> IssuedCertificate:
        # Checking may fetch collateral from a PCCS: keep it off the event loop.
        await asyncio.to_thread(self.check, csr)
        return await self.inner.sign(csr, ttl)

    def trust_bundle(self) -> list[x509.Certificate]:
        return self.inner.trust_bundle()


def quote_appraiser(policy: Policy, collateral_for: CollateralSource) -> QuoteAppraiser:
    """DCAP verification of a quote against ``collateral_for(quote, now)``, then ``policy``."""

    def appraise_quote(raw: bytes, now: float) -> Verdict:
        try:
            quote = parse_quote(raw)
        except QuoteFormatError as exc:
            return Verdict(reason="malformed_quote", message=str(exc))
        return appraise(quote, collateral_for(quote, now), now, policy)

    return appraise_quote


def gate_from_settings(
    ca: CertificateAuthority,
    settings: CAAttestationSettings,
    attestation: AttestationSettings,
    state_dir: Path,
    clock: Callable[[], float] = time.time,
) -> CertificateAuthority:
    """``ca`` behind an :class:`AttestationGate` when ``require_attestation`` is set."""
    if not settings.require_attestation:
        return ca
    policy = (
        Policy.from_file(settings.attestation_policy)
        if settings.attestation_policy
        else DEFAULT_POLICY
    )
    source: CollateralSource
    if settings.attestation_collateral is not None:
        bundle = _read_bundle(settings.attestation_collateral)
        source = lambda _quote, _now: bundle  # noqa: E731 - one bundle for every quote
    else:
        client = PccsClient.from_settings(attestation, cache_dir=collateral_cache_dir(state_dir))
        source = client.collateral_for
    max_age = parse_ttl(settings.attestation_max_age)
    nonces = NonceLedger.in_state_dir(state_dir)
    return AttestationGate(ca, quote_appraiser(policy, source), max_age, clock, nonces)


def _read_bundle(path: Path) -> Collateral:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(
            f"ca.attestation_collateral: cannot read {path}: {exc.strerror}"
        ) from None
    return Collateral.from_json(text)
