"""Which settings turn on attested SDS issuance, and where the TEE is looked for."""

from __future__ import annotations

from pathlib import Path

import pytest

from scm.config import load_settings
from scm.pki.local_ca import CASettings
from scm.sds.attested import TeeEvidence, evidence_provider
from scm.sds.daemon import SdsSettings


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"SCM_SDS_ATTEST": "true"}, TeeEvidence(Path("/"))),
        ({"SCM_CA_REQUIRE_ATTESTATION": "true"}, TeeEvidence(Path("/"))),
        (
            {"SCM_SDS_ATTEST": "true", "SCM_SDS_TEE_ROOT": "/run/tee"},
            TeeEvidence(Path("/run/tee")),
        ),
    ],
    ids=["off", "sds.attest", "ca.require_attestation", "tee_root"],
)
def test_attested_issuance_follows_sds_attest_or_the_ca_requirement(
    environ: dict[str, str], expected: TeeEvidence | None
) -> None:
    settings = load_settings(None, environ=environ)
    sds = settings.section("sds", SdsSettings)
    required = settings.section("ca", CASettings).require_attestation
    assert evidence_provider(sds.attest, required, sds.tee_root) == expected
