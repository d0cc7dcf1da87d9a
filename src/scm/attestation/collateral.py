"""Collateral: the Intel-signed data a quote is verified against.

:class:`Collateral` holds every piece as Intel signed it: TCB Info and QE Identity as their exact
JSON text (signatures cover those bytes), CRLs as DER, issuer chains as PEM. Its JSON form is the
one dcap-qvl calls ``QuoteCollateralV3`` (hex for binary fields), so offline bundles are
interchangeable between the two verifiers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any

from scm.attestation.errors import CollateralError

_TEXT_FIELDS = (
    "pck_crl_issuer_chain",
    "tcb_info_issuer_chain",
    "tcb_info",
    "qe_identity_issuer_chain",
    "qe_identity",
)
_HEX_FIELDS = ("root_ca_crl", "pck_crl", "tcb_info_signature", "qe_identity_signature")


@dataclass(frozen=True)
class Collateral:
    """Everything besides the quote that DCAP verification needs (the PCK chain is in the quote)."""

    pck_crl_issuer_chain: str
    root_ca_crl: bytes
    pck_crl: bytes
    tcb_info_issuer_chain: str
    tcb_info: str
    tcb_info_signature: bytes
    qe_identity_issuer_chain: str
    qe_identity: str
    qe_identity_signature: bytes

    @classmethod
    def from_json(cls, text: str | bytes) -> Collateral:
        """Read the ``QuoteCollateralV3`` JSON form (as written by dcap-qvl and :meth:`to_json`)."""
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise CollateralError(f"collateral is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise CollateralError("collateral is not a JSON object")
        return cls.from_dict(doc)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Collateral:
        values: dict[str, Any] = {}
        for name in _TEXT_FIELDS:
            value = doc.get(name)
            if not isinstance(value, str) or not value:
                raise CollateralError(f"collateral field {name} is missing or not a string")
            values[name] = value
        for name in _HEX_FIELDS:
            value = doc.get(name)
            if not isinstance(value, str):
                raise CollateralError(f"collateral field {name} is missing or not a hex string")
            try:
                values[name] = bytes.fromhex(value)
            except ValueError:
                raise CollateralError(f"collateral field {name} is not valid hex") from None
        return cls(**values)

    def to_dict(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.hex() if isinstance(value, bytes) else value
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1) + "\n"
