"""Reading Intel PCS API v4 responses: real go-tdx-guest samples keep their Intel signatures."""

from __future__ import annotations

import pytest

from scm.attestation.chains import signed_by_leaf, verified_crls
from scm.attestation.errors import CollateralError
from scm.attestation.pcs import crl_der, issuer_chain, signed_object
from scm.attestation.tcb import parse_qe_identity, parse_tcb_info
from tests.attestation_cases import FIXTURES

PCS = FIXTURES / "pcs-format" / "go-tdx-guest"


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("sample_tcbInfo_response", "tcbInfo"),
        ("sample_tcbinfo_response_v5", "tcbInfo"),
        ("sample_qeIdentity_response", "enclaveIdentity"),
    ],
)
def test_signed_object_is_cut_out_byte_exact(name: str, key: str) -> None:
    text, signature = signed_object((PCS / name).read_bytes(), key)
    chain = (PCS / "tcb_info_issuer_chain.pem").read_bytes()
    # Intel's signature verifies only over the exact bytes as sent.
    signed_by_leaf(chain, "TCB signing chain", signature, text.encode())
    model = parse_tcb_info(text) if key == "tcbInfo" else parse_qe_identity(text)
    assert model.next_update > model.issue_date


def test_real_pcs_crls_verify_against_the_pinned_root() -> None:
    lists = verified_crls(
        crl_der((PCS / "rootcrl.der").read_bytes()),
        crl_der((PCS / "pckcrl").read_bytes()),
        (PCS / "pck_crl_issuer_chain.pem").read_text(),
    )
    assert {w.what for w in lists.windows} >= {"root CA CRL", "PCK CRL"}


def test_crl_encodings_are_equivalent() -> None:
    der = (PCS / "pckcrl").read_bytes()
    assert crl_der(der.hex().encode()) == der
    with pytest.raises(CollateralError):
        crl_der(b"not a crl")


def test_malformed_responses_are_collateral_errors() -> None:
    with pytest.raises(CollateralError, match="no tcbInfo"):
        signed_object(b'{"enclaveIdentity":{},"signature":"00"}', "tcbInfo")
    with pytest.raises(CollateralError, match="not a JSON object"):
        signed_object(b'{"tcbInfo":{"a":1}', "tcbInfo")
    with pytest.raises(CollateralError, match="header"):
        issuer_chain(None, "TCB-Info-Issuer-Chain")
