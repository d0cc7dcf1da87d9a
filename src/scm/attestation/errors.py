"""Errors of the attestation domain, each a category of :mod:`scm.errors`."""

from __future__ import annotations

from scm.errors import ConfigError, InputError, UnavailableError


class QuoteFormatError(InputError):
    """A quote's bytes do not follow the DCAP quote layout."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(f"malformed quote at byte {offset}: {reason}")
        self.offset = offset
        self.reason = reason


class CollateralError(InputError):
    """Collateral (TCB Info, QE Identity, CRLs, issuer chains) is malformed or incomplete."""


class PolicyError(ConfigError):
    """An appraisal policy file is malformed."""


class CollateralUnavailableError(UnavailableError):
    """A PCCS or PCS could not deliver collateral."""


class EvidenceError(UnavailableError):
    """Evidence could not be generated: no TEE interface, or it misbehaved."""
