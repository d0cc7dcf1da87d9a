"""Evidence generation through configfs-tsm and Gramine, on directory trees shaped like them."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from scm.attestation import parse_quote
from scm.attestation.errors import EvidenceError
from scm.attestation.evidence import (
    GRAMINE_DIR,
    TSM_REPORT_DIR,
    ConfigfsTsm,
    check_key_binding,
    generate_key_evidence,
    generate_quote,
    key_report_data,
)
from tests.attestation_cases import case
from tests.integration.attestation.test_cli import scm
from tests.tee_trees import gramine_tree, tsm_tree

NONCE = bytes(range(32))


def test_configfs_tsm_writes_64_bytes_and_returns_the_quote(tmp_path: Path) -> None:
    quote = case("tdx_v4_uptodate").quote
    root = tsm_tree(tmp_path, quote)
    report_data = bytes(range(64))
    assert ConfigfsTsm(root, entry="scm-test").quote(report_data) == quote
    assert (root / TSM_REPORT_DIR / "scm-test" / "inblob").read_bytes() == report_data


class _KernelTsm(ConfigfsTsm):
    """configfs as the kernel runs it: every inblob write adds one to generation."""

    def _write_inblob(self, entry: Path, report_data: bytes) -> None:
        super()._write_inblob(entry, report_data)
        _bump(entry)


def _bump(entry: Path) -> None:
    generation = entry / "generation"
    generation.write_text(f"{int(generation.read_text()) + 1}\n")


class _RacingAfterRead(_KernelTsm):
    """Another process writes inblob between our write and our read of outblob."""

    def _read_outblob(self, entry: Path) -> bytes:
        _bump(entry)
        return super()._read_outblob(entry)


class _RacingBeforeRead(_KernelTsm):
    """Another process writes inblob right after ours, before we look at generation again:
    reading generation only after our write (as scm did) took its count for ours."""

    def _write_inblob(self, entry: Path, report_data: bytes) -> None:
        super()._write_inblob(entry, report_data)
        _bump(entry)


def test_configfs_tsm_accepts_its_own_single_write(tmp_path: Path) -> None:
    quote = case("tdx_v4_uptodate").quote
    root = tsm_tree(tmp_path, quote)
    assert _KernelTsm(root, entry="scm-test").quote(bytes(64)) == quote


@pytest.mark.parametrize("racer", [_RacingAfterRead, _RacingBeforeRead])
def test_configfs_tsm_detects_a_concurrent_writer(tmp_path: Path, racer: type) -> None:
    root = tsm_tree(tmp_path, case("tdx_v4_uptodate").quote)
    with pytest.raises(EvidenceError, match="concurrently"):
        racer(root, entry="scm-test").quote(bytes(64))


def test_wrong_provider_is_refused(tmp_path: Path) -> None:
    root = tsm_tree(tmp_path, b"x")
    (root / TSM_REPORT_DIR / "scm-test" / "provider").write_text("sev_guest\n")
    with pytest.raises(EvidenceError, match="sev_guest"):
        ConfigfsTsm(root, entry="scm-test").quote(bytes(64))


def test_gramine_writes_user_report_data_and_reads_the_quote(tmp_path: Path) -> None:
    quote = case("sgx_v3_processor_cfg_swhardening").quote
    device = gramine_tree(tmp_path, quote) / GRAMINE_DIR
    evidence = generate_quote(bytes(range(64)), tmp_path)
    assert (evidence.source, evidence.quote) == ("gramine", quote)
    assert (device / "user_report_data").read_bytes() == bytes(range(64))


def test_no_tee_interface_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EvidenceError, match="no TEE quote interface"):
        generate_key_evidence(ec.generate_private_key(ec.SECP256R1()).public_key(), NONCE, tmp_path)
    with pytest.raises(EvidenceError, match="64 bytes"):
        generate_quote(bytes(10), tmp_path)


def test_key_binding_accepts_the_bound_key_only() -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    raw = bytearray(case("tdx_v4_uptodate").quote)
    raw[48 + 520 : 48 + 584] = key_report_data(key, NONCE)  # REPORTDATA of the TD report
    quote = parse_quote(bytes(raw))
    assert check_key_binding(quote, key, NONCE)
    assert not check_key_binding(quote, other, NONCE)
    assert not check_key_binding(quote, key, bytes(32))
    with pytest.raises(EvidenceError, match="nonce"):
        key_report_data(key, b"short")


def test_cli_quote_writes_the_quote(tmp_path: Path) -> None:
    quote = case("sgx_v3_processor_cfg_swhardening").quote
    device = tmp_path / "enclave" / GRAMINE_DIR
    device.mkdir(parents=True)
    (device / "quote").write_bytes(quote)
    out = tmp_path / "quote.bin"
    root = str(tmp_path / "enclave")
    result = scm(
        "attest", "quote", "--report-data", "ab" * 64, "--root", root, "--output", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == quote
    assert (device / "user_report_data").read_bytes() == bytes.fromhex("ab" * 64)
    bad = scm("attest", "quote", "--report-data", "zz", "--root", root)
    assert bad.returncode != 0 and "not hex" in bad.stderr


def test_cli_quote_on_an_inert_configfs_tree_fails_in_one_line(tmp_path: Path) -> None:
    # A plain directory is not configfs: mkdir leaves the entry empty and the request fails.
    (tmp_path / TSM_REPORT_DIR).mkdir(parents=True)
    result = scm("attest", "quote", "--report-data", "00" * 64, "--root", str(tmp_path))
    assert result.returncode != 0
    assert result.stderr.startswith("scm: error: configfs-tsm request failed")
    assert len(result.stderr.strip().splitlines()) == 1
