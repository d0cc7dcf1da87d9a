"""Attested SDS issuance: evidence from this TEE for each new key, carried in its CSR.

With ``[sds] attest = true``, or when ``[ca] require_attestation`` is set, the issuer asks the
TEE below ``[sds] tee_root`` (configfs-tsm in a TDX guest, Gramine's ``/dev/attestation`` in an
SGX enclave) for a quote whose REPORTDATA binds each new key and a time-stamped nonce, and puts
it in the CSR (:func:`scm.pki.build_csr`). Every issuance, first or renewal, has a new key and
so new evidence. A TEE that gives none fails that issuance: the error is in ``/status``
(``issuance.last_error``) and renewal retries with backoff as for a CA outage.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from scm.errors import UnavailableError
from scm.pki.csr_evidence import CsrEvidence, collect_evidence

# Evidence for a new key's public key; raises UnavailableError when the TEE gives none.
EvidenceProvider = Callable[[PublicKeyTypes], CsrEvidence]


@dataclass(frozen=True)
class TeeEvidence:
    """Evidence from the TEE interfaces below ``root`` (``tsm_entry``: an existing entry)."""

    root: Path = Path("/")
    tsm_entry: str | None = None
    clock: Callable[[], float] = field(default=time.time, compare=False)

    def __call__(self, public_key: PublicKeyTypes) -> CsrEvidence:
        try:
            return collect_evidence(public_key, self.root, self.clock(), self.tsm_entry)
        except UnavailableError as exc:  # the attestation layer's EvidenceError
            raise UnavailableError(
                f"attested issuance: no evidence from the TEE below {self.root}: {exc}"
            ) from None


def evidence_provider(
    attest: bool, require_attestation: bool, tee_root: Path
) -> EvidenceProvider | None:
    """The provider issuance uses, None when neither the settings nor the CA ask for one."""
    return TeeEvidence(tee_root) if attest or require_attestation else None
