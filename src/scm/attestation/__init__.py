"""DCAP attestation: parse, verify and appraise SGX and TDX quotes; generate evidence in a TEE."""

from scm.attestation.collateral import Collateral
from scm.attestation.errors import CollateralError, QuoteFormatError
from scm.attestation.quote import EnclaveReport, Quote, TdReport, parse_quote
from scm.attestation.verdict import REASONS, Verdict
from scm.attestation.verify import verify

__all__ = [
    "REASONS",
    "Collateral",
    "CollateralError",
    "EnclaveReport",
    "Quote",
    "QuoteFormatError",
    "TdReport",
    "Verdict",
    "parse_quote",
    "verify",
]
