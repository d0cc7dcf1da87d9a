"""Intel QVL's TDX rules: module SVN offset, module identities, SEAMATTRIBUTES, TD relaunch.

The full-verification tests use the real quotes and collateral with Intel QVL's own verdict
(manifest ``expected_intel_qvl``). The rule tests evaluate the real TCB Info of those cases
against the real TD report with one field changed (TEE_TCB_SVN, SEAMATTRIBUTES): evaluation
works on the parsed report, so no signature is forged or claimed to verify.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from scm.attestation import tcb, tdx, verify
from scm.attestation.chains import verified_chain
from scm.attestation.pck import PckExtension, pck_extension
from scm.attestation.quote import TdReport, parse_quote
from tests.attestation_cases import case, cases

INTEL_CASES = [c.name for c in cases() if "expected_intel_qvl" in c.entry]


def _parts(name: str) -> tuple[tcb.TcbInfo, PckExtension, TdReport]:
    c = case(name)
    quote = parse_quote(c.quote)
    assert isinstance(quote.report, TdReport)
    pck = pck_extension(verified_chain(quote.pck_chain_pem, "PCK chain").leaf)
    return tcb.parse_tcb_info(c.collateral.tcb_info), pck, quote.report


def _svn(*head: int) -> bytes:
    return bytes(head) + bytes(16 - len(head))


@pytest.mark.parametrize("name", INTEL_CASES)
def test_verdict_matches_intel_qvl(name: str) -> None:
    c = case(name)
    verdict = verify(c.quote, c.collateral, c.verify_at)
    expected = c.entry["expected_intel_qvl"]
    assert verdict.ok, verdict.message
    assert (verdict.status, list(verdict.advisory_ids)) == (
        expected["status"],
        expected["advisory_ids"],
    )


def test_module_svn_below_the_platform_level_is_judged_by_its_own_identity() -> None:
    # TEE_TCB_SVN 04 01 07..: module TDX_01 at ISV SVN 4. Comparing byte 0 with the platform
    # level's first component (5) would match no level at all; Intel skips bytes 0-1.
    c = case("tdx_v4_module_svn_low_advisories")
    doc = verify(c.quote, c.collateral, c.verify_at).to_dict()
    levels = doc["matched_levels"]
    assert levels["tdx_module"] == {"status": "OutOfDate", "isv_svn": 4, "id": "TDX_01"}
    assert levels["platform"]["status"] == "OutOfDate"
    assert doc["status"] == "OutOfDate"


def test_td15_relaunch_verdict_names_the_levels_on_tee_tcb_svn2() -> None:
    c = case("tdx_v5_td_relaunch_advised")
    doc = verify(c.quote, c.collateral, c.verify_at).to_dict()
    levels = doc["matched_levels"]
    assert levels["tdx_module"]["status"] == "OutOfDate"
    assert levels["tdx_module_svn2"] == {"status": "UpToDate", "isv_svn": 6, "id": "TDX_01"}
    assert levels["platform_svn2"]["status"] == "UpToDate"
    assert doc["status"] == tcb.TD_RELAUNCH_ADVISED


def test_module_version_zero_compares_every_byte_with_the_platform_level() -> None:
    info, pck, report = _parts("tdx_v5_td_relaunch_advised")
    # Version 0: byte 0 is a platform component again; 4 is below every level's 5.
    with pytest.raises(tcb.NoMatchingLevel):
        tdx.evaluate(info, pck, replace(report, tee_tcb_svn=_svn(4, 0, 3), tee_tcb_svn2=None))
    status = tdx.evaluate(info, pck, replace(report, tee_tcb_svn=_svn(5, 0, 3), tee_tcb_svn2=None))
    # No module status of its own: only the platform level decides.
    assert status.status == tcb.UP_TO_DATE
    assert [level.role for level in status.levels] == ["platform"]


def test_module_version_above_zero_ignores_bytes_zero_and_one_for_the_platform() -> None:
    info, pck, report = _parts("tdx_v5_td_relaunch_advised")
    status = tdx.evaluate(info, pck, replace(report, tee_tcb_svn=_svn(3, 3, 3), tee_tcb_svn2=None))
    assert status.status == tcb.UP_TO_DATE
    assert status.levels[1] == tcb.MatchedLevel(
        "tdx_module", "UpToDate", isv_svn=3, identity="TDX_03"
    )


def test_module_identity_id_is_the_version_in_upper_case_hex() -> None:
    info, pck, report = _parts("tdx_v5_td_relaunch_advised")
    tdx_01 = next(m for m in info.tdx_module_identities if m.id == "TDX_01")
    info = replace(info, tdx_module_identities=(replace(tdx_01, id="TDX_0A"),))
    status = tdx.evaluate(info, pck, replace(report, tee_tcb_svn=_svn(6, 10, 3), tee_tcb_svn2=None))
    assert status.levels[1].identity == "TDX_0A"
    with pytest.raises(tdx.ModuleMismatch, match="TDX_10"):
        tdx.evaluate(info, pck, replace(report, tee_tcb_svn=_svn(6, 16, 3), tee_tcb_svn2=None))


def test_missing_module_identities_are_a_mismatch_not_a_fallback() -> None:
    info, pck, report = _parts("tdx_v5_td_relaunch_advised")
    info = replace(info, tdx_module_identities=())
    with pytest.raises(tdx.ModuleMismatch, match="no module identities"):
        tdx.check_module(report, info)
    with pytest.raises(tdx.ModuleMismatch):
        tdx.evaluate(info, pck, report)


def test_seam_attributes_must_be_zero_whatever_the_mask() -> None:
    info, _, report = _parts("tdx_v5_td_relaunch_advised")
    tdx.check_module(report, info)
    lenient = tuple(
        replace(m, attributes_mask=bytes(8), attributes=bytes(8))
        for m in info.tdx_module_identities
    )
    info = replace(info, tdx_module_identities=lenient)
    with pytest.raises(tdx.ModuleMismatch, match="SEAMATTRIBUTES"):
        tdx.check_module(replace(report, seam_attributes=b"\x01" + bytes(7)), info)


def test_module_signer_must_be_the_identity_signer() -> None:
    info, _, report = _parts("tdx_v5_td_relaunch_advised")
    with pytest.raises(tdx.ModuleMismatch, match="MRSIGNER_SEAM"):
        tdx.check_module(replace(report, mr_signer_seam=b"\x01" * 48), info)


def test_relaunch_is_not_advised_when_the_current_tcb_is_still_out_of_date() -> None:
    info, pck, report = _parts("tdx_v5_td_relaunch_advised")
    status = tdx.evaluate(info, pck, replace(report, tee_tcb_svn2=report.tee_tcb_svn))
    assert status.status == tcb.OUT_OF_DATE


def test_a_td_10_report_has_no_relaunch_evaluation() -> None:
    info, pck, report = _parts("tdx_v5_td_relaunch_advised")
    assert tdx.evaluate(info, pck, replace(report, tee_tcb_svn2=None)).status == tcb.OUT_OF_DATE


def test_unknown_module_version_on_tee_tcb_svn2_is_a_mismatch() -> None:
    info, pck, report = _parts("tdx_v5_td_relaunch_advised")
    with pytest.raises(tdx.ModuleMismatch):
        tdx.evaluate(info, pck, replace(report, tee_tcb_svn2=_svn(6, 2, 3)))


@pytest.mark.parametrize(
    ("launch", "current", "expected"),
    [
        (tcb.OUT_OF_DATE, tcb.UP_TO_DATE, tcb.TD_RELAUNCH_ADVISED),
        (tcb.OUT_OF_DATE, tcb.SW_HARDENING_NEEDED, tcb.TD_RELAUNCH_ADVISED),
        (tcb.OUT_OF_DATE, tcb.CONFIGURATION_NEEDED, tcb.TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED),
        (
            tcb.OUT_OF_DATE_CONFIGURATION_NEEDED,
            tcb.UP_TO_DATE,
            tcb.TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED,
        ),
        (
            tcb.OUT_OF_DATE,
            tcb.CONFIGURATION_AND_SW_HARDENING_NEEDED,
            tcb.TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED,
        ),
        (tcb.OUT_OF_DATE, tcb.OUT_OF_DATE, tcb.OUT_OF_DATE),
        (tcb.OUT_OF_DATE, tcb.REVOKED, tcb.OUT_OF_DATE),
        (tcb.UP_TO_DATE, tcb.UP_TO_DATE, tcb.UP_TO_DATE),
        (tcb.REVOKED, tcb.UP_TO_DATE, tcb.REVOKED),
    ],
)
def test_relaunch_rule(launch: str, current: str, expected: str) -> None:
    result = tcb.relaunch(tcb.TcbStatus(launch, ("INTEL-SA-1",)), tcb.TcbStatus(current, ("X",)))
    assert result.status == expected
    assert result.advisory_ids == ("INTEL-SA-1",)  # the launch level's advisories


def test_sgx_tcb_info_v2_matches_like_v3() -> None:
    # TCB Info v2 (SGX only) names the components sgxtcbcomp01svn..16svn; the real v3 SGX TCB
    # Info is rewritten in that form (parsing only: no signature is involved).
    c = case("sgx_v3_processor_cfg_swhardening")
    v3 = json.loads(c.collateral.tcb_info)
    v2 = {k: v for k, v in v3.items() if k not in ("id", "tcbType", "tcbEvaluationDataNumber")}
    v2["version"] = 2
    v2["tcbLevels"] = [
        {
            "tcb": {
                **{
                    f"sgxtcbcomp{i + 1:02d}svn": comp["svn"]
                    for i, comp in enumerate(level["tcb"]["sgxtcbcomponents"])
                },
                "pcesvn": level["tcb"]["pcesvn"],
            },
            "tcbDate": level["tcbDate"],
            "tcbStatus": level["tcbStatus"],
            "advisoryIDs": level.get("advisoryIDs", []),
        }
        for level in v3["tcbLevels"]
    ]
    quote = parse_quote(c.quote)
    pck = pck_extension(verified_chain(quote.pck_chain_pem, "PCK chain").leaf)
    old, new = tcb.parse_tcb_info(json.dumps(v2)), tcb.parse_tcb_info(c.collateral.tcb_info)
    assert old.version == 2 and old.id == "SGX"
    match = [tcb.match_platform(i, pck.sgx_tcb_components, pck.pce_svn, None) for i in (old, new)]
    assert match[0] == match[1]
    assert match[0].status == c.expected["status"]
