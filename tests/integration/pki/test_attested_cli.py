"""``scm ca csr --attest`` and ``scm ca issue`` with ``require_attestation``, as processes.

The quote comes from a Gramine tree whose output is a real SGX quote, and the CA verifies it with
the real collateral bundle at the current time, when that collateral has expired: the rejection
is real. The accept path needs a quote binding a fresh key, which only a TEE can make (see
tests/unit/pki/test_attested.py).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from scm.attestation.evidence import GRAMINE_DIR
from scm.pki.csr_evidence import csr_evidence
from tests.attestation_cases import FIXTURES, case
from tests.integration.keys import test_cli as keys_cli
from tests.tee_trees import gramine_tree

scm = keys_cli.scm  # the fixture: each command a process on its own embedded token
IDENTITY = ("--trust-domain", "example.org", "--namespace", "shop", "--service-account", "web")


def test_attested_csr_and_a_ca_that_requires_it(scm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    c = case("sgx_v3_processor_cfg_swhardening")
    root = gramine_tree(tmp_path / "enclave", c.quote)
    assert scm("ca", "init", "--trust-domain", "example.org").returncode == 0
    assert scm("keys", "generate", "web").returncode == 0
    attested, plain = tmp_path / "attested.csr", tmp_path / "plain.csr"
    made = scm(
        "ca", "csr", "web", *IDENTITY, "--attest", "--root", str(root), "--output", str(attested)
    )
    assert made.returncode == 0, made.stderr
    assert scm("ca", "csr", "web", *IDENTITY, "--output", str(plain)).returncode == 0

    csr = x509.load_pem_x509_csr(attested.read_bytes())
    evidence = csr_evidence(csr)
    assert evidence is not None and evidence.quote == c.quote
    spki = csr.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    written = (root / GRAMINE_DIR / "user_report_data").read_bytes()
    assert written == hashlib.sha256(spki).digest() + evidence.nonce

    config = tmp_path / "scm.toml"
    bundle = FIXTURES / c.entry["collateral"]
    config.write_text(
        f"[ca]\nrequire_attestation = true\nattestation_collateral = {json.dumps(str(bundle))}\n"
    )
    issue = ("--config", str(config), "ca", "issue", "--csr")
    keys_cli._fails(
        scm(*issue, str(attested)), 65, "attestation evidence rejected: collateral_expired"
    )
    keys_cli._fails(scm(*issue, str(plain)), 65, "attestation evidence rejected: no_evidence")
    # Without the requirement the CA signs either CSR.
    assert scm("ca", "issue", "--csr", str(plain)).returncode == 0
    assert scm("ca", "issue", "--csr", str(attested)).returncode == 0


def test_attest_without_a_tee_fails_in_one_line(scm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert scm("keys", "generate", "web").returncode == 0
    result = scm("ca", "csr", "web", *IDENTITY, "--attest", "--root", str(tmp_path))
    keys_cli._fails(result, 69, "no TEE quote interface")
    keys_cli._fails(scm("ca", "csr", "nokey", *IDENTITY), 66, "no key labelled 'nokey'")
