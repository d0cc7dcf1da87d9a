"""Read Intel PCS API v4 responses (also served by a PCCS) into :class:`Collateral`.

TCB Info and QE Identity come as ``{"tcbInfo": {...}, "signature": "hex"}`` and
``{"enclaveIdentity": {...}, "signature": "hex"}``; the signature covers the exact bytes of the
inner object, so it is cut out of the body as sent, never re-serialised. Issuer chains come in
URL-encoded PEM headers; CRLs as DER (PCCS may send them hex- or PEM-encoded).
"""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import unquote

from scm.attestation.collateral import Collateral
from scm.attestation.errors import CollateralError

TCB_INFO_CHAIN_HEADERS = ("TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain")
QE_IDENTITY_CHAIN_HEADER = "SGX-Enclave-Identity-Issuer-Chain"
PCK_CRL_CHAIN_HEADER = "SGX-PCK-CRL-Issuer-Chain"
_PEM_CRL = re.compile(rb"-----BEGIN X509 CRL-----(.+?)-----END X509 CRL-----", re.S)


def signed_object(body: bytes | str, key: str) -> tuple[str, bytes]:
    """(exact text of ``body[key]``, signature bytes) of a PCS signed-JSON response."""
    text = body.decode() if isinstance(body, bytes) else body
    decoder = json.JSONDecoder()
    spans: dict[str, tuple[int, int]] = {}
    values: dict[str, object] = {}
    try:
        pos = _skip(text, 0)
        if text[pos] != "{":
            raise ValueError("not a JSON object")
        pos = _skip(text, pos + 1)
        while text[pos] != "}":
            name, pos = decoder.raw_decode(text, pos)
            pos = _skip(text, pos)
            if text[pos] != ":":
                raise ValueError(f"expected ':' at {pos}")
            start = _skip(text, pos + 1)
            values[name], end = decoder.raw_decode(text, start)
            spans[name] = (start, end)
            pos = _skip(text, end)
            if text[pos] == ",":
                pos = _skip(text, pos + 1)
    except (ValueError, IndexError) as exc:
        raise CollateralError(f"PCS response is not a JSON object: {exc}") from None
    if key not in spans or not isinstance(values.get("signature"), str):
        raise CollateralError(f"PCS response has no {key} and signature")
    try:
        signature = bytes.fromhex(str(values["signature"]))
    except ValueError:
        raise CollateralError("PCS response signature is not hex") from None
    start, end = spans[key]
    return text[start:end], signature


def issuer_chain(header_value: str | None, name: str) -> str:
    """The PEM chain of a URL-encoded issuer-chain header."""
    if not header_value:
        raise CollateralError(f"PCS response lacks the {name} header")
    pem = unquote(header_value)
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise CollateralError(f"{name} header holds no PEM certificate")
    return pem


def crl_der(body: bytes) -> bytes:
    """A CRL body as DER, whether sent as DER, hex text or PEM."""
    stripped = body.strip()
    match = _PEM_CRL.search(stripped)
    if match:
        return base64.b64decode(match.group(1))
    if stripped[:1] == b"\x30":
        return body
    try:
        return bytes.fromhex(stripped.decode())
    except (UnicodeDecodeError, ValueError):
        raise CollateralError("CRL is neither DER, hex nor PEM") from None


def collateral_from_pcs(
    *,
    tcb_info_body: bytes,
    tcb_info_chain: str,
    qe_identity_body: bytes,
    qe_identity_chain: str,
    pck_crl_body: bytes,
    pck_crl_chain: str,
    root_ca_crl_body: bytes,
) -> Collateral:
    """Assemble collateral from the raw PCS responses and their decoded issuer-chain headers."""
    tcb_info, tcb_sig = signed_object(tcb_info_body, "tcbInfo")
    qe_identity, qe_sig = signed_object(qe_identity_body, "enclaveIdentity")
    return Collateral(
        pck_crl_issuer_chain=pck_crl_chain,
        root_ca_crl=crl_der(root_ca_crl_body),
        pck_crl=crl_der(pck_crl_body),
        tcb_info_issuer_chain=tcb_info_chain,
        tcb_info=tcb_info,
        tcb_info_signature=tcb_sig,
        qe_identity_issuer_chain=qe_identity_chain,
        qe_identity=qe_identity,
        qe_identity_signature=qe_sig,
    )


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos
