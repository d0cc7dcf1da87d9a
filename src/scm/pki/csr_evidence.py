"""Attestation evidence inside a CSR: a DCAP quote whose REPORTDATA binds the CSR's own key.

Where it goes: a PKCS#10 attribute, not an extension. Extensions in a CSR ask for what the
certificate should contain; evidence is for the CA to check, not to copy into the leaf. The IETF
LAMPS draft on remote attestation in CSRs (draft-ietf-lamps-csr-attestation) makes the same
choice; scm does not use that draft's attribute because its OID and its evidence-bundle encoding
were not final, and a bare quote needs none of that machinery.

The OID is under scm's own arc, 2.25.278114823015075830226080193139522358778: the UUID-derived
OID (ITU-T X.667) of UUID d13af770-9ff7-4dec-a44f-48755eaf4dfa, generated for scm. X.667 lets
whoever generates a UUID use its OID and every arc below it without registering anything, so the
arc belongs to scm and collides with nobody (scm has no IANA Private Enterprise Number; if it
gets one, new OIDs go there). Below the arc: ``.1`` PKI, ``.1.1`` this attribute.

The attribute's value is an OCTET STRING holding ``nonce (32 bytes) || quote`` (the quote as the
TEE produced it; its own header says how long it is). The OID fixes this layout: a different
layout gets a new OID rather than a version field.

The nonce is ``Unix time (8 bytes, big-endian) || 24 random bytes``, chosen in the TEE when the
quote is made, so the CA can refuse evidence older than a freshness window (see
:mod:`scm.pki.attested` for what that does and does not protect against).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from scm.attestation.evidence import NONCE_BYTES, generate_key_evidence
from scm.pki import der
from scm.pki.csr_writer import attribute
from scm.pki.errors import CertificateRequestError

SCM_OID_ARC = "2.25.278114823015075830226080193139522358778"
EVIDENCE_OID = x509.ObjectIdentifier(f"{SCM_OID_ARC}.1.1")
_TIME_BYTES = 8


@dataclass(frozen=True)
class CsrEvidence:
    """A quote and the nonce its REPORTDATA binds together with the CSR's public key."""

    quote: bytes
    nonce: bytes

    @property
    def produced_at(self) -> datetime:
        """When the attester says it made the quote (the nonce's time stamp)."""
        seconds = int.from_bytes(self.nonce[:_TIME_BYTES], "big")
        return datetime.fromtimestamp(seconds, UTC)

    def to_attribute_value(self) -> bytes:
        return self.nonce + self.quote

    @classmethod
    def from_attribute_value(cls, value: bytes) -> CsrEvidence:
        if len(value) <= NONCE_BYTES:
            raise CertificateRequestError(
                f"the CSR's attestation evidence is malformed: {len(value)} bytes is too short"
            )
        return cls(quote=value[NONCE_BYTES:], nonce=value[:NONCE_BYTES])


def timestamped_nonce(now: float | None = None) -> bytes:
    """A fresh nonce that carries its time of creation (Unix seconds, default: now)."""
    seconds = int(time.time() if now is None else now)
    return seconds.to_bytes(_TIME_BYTES, "big") + secrets.token_bytes(NONCE_BYTES - _TIME_BYTES)


def collect_evidence(
    public_key: PublicKeyTypes,
    root: Path = Path("/"),
    now: float | None = None,
    tsm_entry: str | None = None,
) -> CsrEvidence:
    """Ask this TEE (configfs-tsm or Gramine below ``root``) for a quote binding ``public_key``."""
    nonce = timestamped_nonce(now)
    return CsrEvidence(generate_key_evidence(public_key, nonce, root, tsm_entry).quote, nonce)


def evidence_attribute(evidence: CsrEvidence) -> bytes:
    """The DER of the evidence attribute, for :func:`scm.pki.csr_writer.request_info`.

    Its value is an OCTET STRING, which ``cryptography``'s CSR builder can only write through
    a private keyword: scm writes the request info itself rather than depend on that.
    """
    return attribute(EVIDENCE_OID.dotted_string, der.octet_string(evidence.to_attribute_value()))


def csr_evidence(csr: x509.CertificateSigningRequest) -> CsrEvidence | None:
    """The evidence ``csr`` carries, None when it carries none."""
    try:
        attribute = csr.attributes.get_attribute_for_oid(EVIDENCE_OID)
    except x509.AttributeNotFound:
        return None
    except ValueError:  # cryptography parses attributes lazily
        raise CertificateRequestError("the CSR's attributes cannot be read") from None
    return CsrEvidence.from_attribute_value(attribute.value)
