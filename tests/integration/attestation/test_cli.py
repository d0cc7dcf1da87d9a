"""``scm attest show|verify`` as a user runs them: output, exit status, one-line errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.attestation_cases import FIXTURES, case

SCM = shutil.which("scm", path=str(Path(sys.executable).parent)) or "scm"


def scm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SCM, *args], capture_output=True, text=True, timeout=60)


def _paths(name: str) -> tuple[str, str]:
    entry = case(name).entry
    return str(FIXTURES / entry["quote"]), str(FIXTURES / entry["collateral"])


def test_show_prints_the_report_as_json() -> None:
    quote, _ = _paths("tdx_v4_uptodate")
    result = scm("attest", "show", quote, "--format", "json")
    assert result.returncode == 0
    shown = json.loads(result.stdout)
    assert (
        shown["tee"] == "TDX"
        and shown["report_data"] == case("tdx_v4_uptodate").entry["report_data_hex"]
    )


def test_verify_exits_zero_only_when_the_policy_accepts(tmp_path: Path) -> None:
    c = case("sgx_v3_processor_cfg_swhardening")
    quote, collateral = _paths(c.name)
    at = str(c.verify_at)
    rejected = scm(
        "attest", "verify", quote, "--collateral", collateral, "--at", at, "--format", "json"
    )
    assert rejected.returncode == 1
    verdict = json.loads(rejected.stdout)
    assert verdict["status"] == c.expected["status"] and verdict["rule"] == "accepted_statuses"
    policy = tmp_path / "policy.toml"
    policy.write_text(f'accepted_statuses = ["{c.expected["status"]}"]\n')
    accepted = scm(
        "attest", "verify", quote, "--collateral", collateral, "--at", at, "--policy", str(policy)
    )
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert accepted.stdout.startswith("accepted: ")


def test_expired_collateral_is_a_rejection_not_a_crash() -> None:
    c = case("tdx_v4_uptodate")
    quote, collateral = _paths(c.name)
    result = scm(
        "attest", "verify", quote, "--collateral", collateral, "--at", str(c.window[1] + 86400)
    )
    assert result.returncode == 1
    assert result.stdout.startswith("rejected: collateral_expired")


def test_bad_input_is_one_line_on_stderr(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x05\x00\x02\x00\x81\x00\x00\x00" + bytes(40))
    result = scm("attest", "show", str(garbage))
    assert result.returncode != 0
    assert result.stderr.startswith("scm: error: malformed quote at byte 48")
    assert len(result.stderr.strip().splitlines()) == 1
    quote, _ = _paths("tdx_v4_uptodate")
    bad_collateral = tmp_path / "c.json"
    bad_collateral.write_text('{"tcb_info": 1}')
    result = scm("attest", "verify", quote, "--collateral", str(bad_collateral))
    assert result.returncode != 0 and result.stderr.startswith("scm: error: collateral field")


def test_verify_names_the_matched_tcb_levels() -> None:
    c = case("tdx_v5_td_relaunch_advised")
    quote, collateral = _paths(c.name)
    at = str(c.verify_at)
    shown = scm("attest", "verify", quote, "--collateral", collateral, "--at", at)
    # Refused by the default policy, and the second line says which levels decided it.
    assert shown.returncode == 1
    first, matched = shown.stdout.splitlines()
    assert first.startswith("rejected: policy_rejected [accepted_statuses]")
    assert "TDRelaunchAdvised" in first
    assert "tdx_module TDX_01 ISV SVN 4: OutOfDate" in matched
    assert "tdx_module_svn2 TDX_01 ISV SVN 6: UpToDate" in matched
    doc = json.loads(
        scm(
            "attest", "verify", quote, "--collateral", collateral, "--at", at, "--format", "json"
        ).stdout
    )
    assert doc["matched_levels"]["platform_svn2"]["status"] == "UpToDate"
