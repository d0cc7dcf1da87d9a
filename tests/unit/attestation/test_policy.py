"""Appraisal policy: what is accepted, and which rule a rejection names."""

from __future__ import annotations

import pytest

from scm.attestation import parse_quote
from scm.attestation.errors import PolicyError
from scm.attestation.policy import Policy, appraise
from tests.attestation_cases import case

DAY = 86400


def _appraise(name: str, policy_text: str = "") -> tuple[str | None, str | None]:
    c = case(name)
    verdict = appraise(c.quote, c.collateral, c.verify_at, Policy.from_toml(policy_text))
    return verdict.reason, verdict.rule


def test_default_policy_accepts_up_to_date_and_rejects_configuration_needed() -> None:
    assert _appraise("tdx_v4_uptodate") == (None, None)
    assert _appraise("sgx_v3_processor_cfg_swhardening") == ("policy_rejected", "accepted_statuses")


def test_accepted_statuses_and_advisory_lists() -> None:
    name = "sgx_v3_processor_cfg_swhardening"
    accept = 'accepted_statuses = ["ConfigurationAndSWHardeningNeeded"]\n'
    assert _appraise(name, accept) == (None, None)
    assert _appraise(name, accept + 'denied_advisories = ["INTEL-SA-00615"]') == (
        "policy_rejected",
        "denied_advisories",
    )
    assert _appraise(name, accept + 'allowed_advisories = ["INTEL-SA-00289"]') == (
        "policy_rejected",
        "allowed_advisories",
    )


def test_out_of_date_grace_period_counts_from_the_newer_tcb_level() -> None:
    c = case("tdx_v4_outofdate")
    strict = appraise(c.quote, c.collateral, c.verify_at, Policy())
    assert strict.rule == "accepted_statuses"
    assert strict.superseded_at is not None
    age_days = (c.verify_at - strict.superseded_at.timestamp()) / DAY
    generous = Policy(out_of_date_grace_days=int(age_days) + 1)
    tight = Policy(out_of_date_grace_days=max(1, int(age_days) - 1))
    assert appraise(c.quote, c.collateral, c.verify_at, generous).ok
    assert appraise(c.quote, c.collateral, c.verify_at, tight).rule == "accepted_statuses"


def test_debug_is_rejected_unless_the_policy_allows_it() -> None:
    name = "sgx_v3_debug_enclave"
    assert _appraise(name)[0] == "debug_enabled"
    relaxed = 'allow_debug = true\naccepted_statuses = ["ConfigurationAndSWHardeningNeeded"]'
    assert _appraise(name, relaxed) == (None, None)


def test_expected_measurements_and_report_data() -> None:
    c = case("tdx_v5_td15_uptodate")
    report = parse_quote(c.quote).report
    mr_td = report.mr_td.hex()  # type: ignore[union-attr]
    good = f'report_data = "{report.report_data.hex()}"\n[tdx]\nmr_td = ["{mr_td}"]\n'
    assert _appraise(c.name, good) == (None, None)
    wrong_rtmr = f'[tdx]\nmr_td = ["{mr_td}"]\nrtmr2 = ["{"ee" * 48}"]\n'
    assert _appraise(c.name, wrong_rtmr) == ("policy_rejected", "tdx.rtmr2")
    assert _appraise(c.name, f'report_data = "{"11" * 64}"') == ("policy_rejected", "report_data")
    assert _appraise(c.name, f'[sgx]\nmr_enclave = ["{"00" * 32}"]') == ("policy_rejected", "sgx")


def test_sgx_identity_rules() -> None:
    name = "sgx_v3_processor_cfg_swhardening"
    report = parse_quote(case(name).quote).report
    base = 'accepted_statuses = ["ConfigurationAndSWHardeningNeeded"]\n[sgx]\n'
    ok = base + f'mr_signer = ["{report.mr_signer.hex()}"]\n'  # type: ignore[union-attr]
    assert _appraise(name, ok) == (None, None)
    assert _appraise(name, base + f'mr_enclave = ["{"ab" * 32}"]') == (
        "policy_rejected",
        "sgx.mr_enclave",
    )
    svn = report.isv_svn + 1  # type: ignore[union-attr]
    assert _appraise(name, base + f"min_isv_svn = {svn}") == ("policy_rejected", "sgx.min_isv_svn")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("accepted_statuses = ['Fine']", "unknown TCB status"),
        ("colour = 1", "unknown policy key colour"),
        ("[sgx]\nmr_enclave = ['abcd']", "sgx.mr_enclave must be 32 bytes"),
        ("allow_debug = 'yes'", "allow_debug must be true or false"),
        ("report_data = ", "not valid TOML"),
    ],
)
def test_malformed_policies_are_rejected_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        Policy.from_toml(text)


def test_td_relaunch_advised_is_refused_by_default_and_can_be_accepted() -> None:
    # The TD still runs with what it measured at launch on an out-of-date TCB.
    c = case("tdx_v5_td_relaunch_advised")
    refused = appraise(c.quote, c.collateral, c.verify_at)
    assert (refused.status, refused.rule) == ("TDRelaunchAdvised", "accepted_statuses")
    policy = Policy.from_toml('accepted_statuses = ["UpToDate", "TDRelaunchAdvised"]')
    assert appraise(c.quote, c.collateral, c.verify_at, policy).ok
    config = Policy.from_toml('accepted_statuses = ["TDRelaunchAdvisedConfigurationNeeded"]')
    assert appraise(c.quote, c.collateral, c.verify_at, config).rule == "accepted_statuses"
