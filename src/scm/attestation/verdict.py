"""The outcome of verifying (and appraising) a quote."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from scm.attestation.quote import EnclaveReport, Quote, Report, TdReport
from scm.attestation.tcb import MatchedLevel

# Stable reason codes: callers and scripts may rely on these strings.
REASONS = {
    "malformed_quote": "the quote does not follow the DCAP layout",
    "malformed_collateral": "the collateral cannot be read",
    "pck_chain_invalid": "the PCK certificate chain does not lead to the Intel SGX Root CA",
    "collateral_chain_invalid": "a collateral issuer chain does not lead to the Intel SGX Root CA",
    "crl_invalid": "a CRL is malformed or not signed by its issuer",
    "collateral_expired": "a certificate, CRL, TCB Info or QE Identity has expired",
    "collateral_not_yet_valid": "a certificate, CRL, TCB Info or QE Identity is not valid yet",
    "revoked": "a certificate in a chain is revoked",
    "tcb_info_signature_invalid": "TCB Info is not signed by its issuer",
    "qe_identity_signature_invalid": "QE Identity is not signed by its issuer",
    "collateral_mismatch": "the collateral is for another TEE type, FMSPC, PCE or CA",
    "qe_report_signature_invalid": "the QE report is not signed by the PCK key",
    "qe_report_data_mismatch": "the QE report does not bind the attestation key",
    "qe_identity_mismatch": "the quoting enclave is not the one QE Identity describes",
    "quote_signature_invalid": "the quote is not signed by the attestation key",
    "tcb_not_supported": "no TCB level of the collateral covers the platform",
    "tdx_module_mismatch": "the TDX module is not the one TCB Info describes",
    "tcb_revoked": "the platform's TCB is revoked",
    "debug_enabled": "the enclave or TD runs in debug mode",
    "td_attributes_invalid": "TD attributes have reserved bits set or SEPT_VE_DISABLE clear",
    "service_td_bound": "the TD is bound to a service TD (MR_SERVICETD is set)",
    "policy_rejected": "the appraisal policy rejects the quote",
}


@dataclass(frozen=True)
class Verdict:
    """What verification concluded. ``ok`` when ``reason`` is None.

    ``status`` and ``advisory_ids`` are set whenever TCB matching ran, also for rejections that
    come after it (a debug enclave still has a TCB status). ``rule`` names the failed policy rule.
    """

    status: str | None = None
    advisory_ids: tuple[str, ...] = ()
    quote: Quote | None = None
    superseded_at: datetime | None = None  # when a newer TCB level replaced the platform's
    levels: tuple[MatchedLevel, ...] = ()  # the TCB levels that decided ``status``
    reason: str | None = None
    message: str = ""
    rule: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None

    @property
    def report(self) -> Report | None:
        return self.quote.report if self.quote else None

    def rejected(self, reason: str, message: str, rule: str | None = None) -> Verdict:
        return replace(self, reason=reason, message=message, rule=rule)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ok": self.ok,
            "status": self.status,
            "advisory_ids": list(self.advisory_ids),
            "reason": self.reason,
            "message": self.message,
        }
        if self.rule:
            out["rule"] = self.rule
        if self.levels:
            out["matched_levels"] = {level.role: level.to_dict() for level in self.levels}
        if self.superseded_at:
            out["tcb_superseded_at"] = self.superseded_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        if self.quote is not None:
            out["quote"] = quote_summary(self.quote)
        return out


def quote_summary(quote: Quote) -> dict[str, Any]:
    """The fields a relying party checks, hex-encoded, as one JSON-ready mapping."""
    out: dict[str, Any] = {
        "version": quote.header.version,
        "tee": "TDX" if quote.is_tdx else "SGX",
        "qe_vendor_id": quote.header.qe_vendor_id.hex(),
    }
    out.update(report_fields(quote.report))
    return out


def report_fields(report: Report) -> dict[str, Any]:
    if isinstance(report, EnclaveReport):
        return {
            "mr_enclave": report.mr_enclave.hex(),
            "mr_signer": report.mr_signer.hex(),
            "isv_prod_id": report.isv_prod_id,
            "isv_svn": report.isv_svn,
            "attributes": report.attributes.hex(),
            "misc_select": f"{report.misc_select:08x}",
            "cpu_svn": report.cpu_svn.hex(),
            "debug": report.debug,
            "report_data": report.report_data.hex(),
        }
    assert isinstance(report, TdReport)
    out: dict[str, Any] = {
        "td_report": "1.5" if report.mr_servicetd is not None else "1.0",
        "mr_td": report.mr_td.hex(),
        "rtmr0": report.rtmrs[0].hex(),
        "rtmr1": report.rtmrs[1].hex(),
        "rtmr2": report.rtmrs[2].hex(),
        "rtmr3": report.rtmrs[3].hex(),
        "mr_config_id": report.mr_config_id.hex(),
        "mr_owner": report.mr_owner.hex(),
        "mr_owner_config": report.mr_owner_config.hex(),
        "td_attributes": report.td_attributes.hex(),
        "xfam": report.xfam.hex(),
        "tee_tcb_svn": report.tee_tcb_svn.hex(),
        "mr_seam": report.mr_seam.hex(),
        "mr_signer_seam": report.mr_signer_seam.hex(),
        "seam_attributes": report.seam_attributes.hex(),
        "debug": report.debug,
        "report_data": report.report_data.hex(),
    }
    if report.mr_servicetd is not None and report.tee_tcb_svn2 is not None:
        out["tee_tcb_svn2"] = report.tee_tcb_svn2.hex()
        out["mr_servicetd"] = report.mr_servicetd.hex()
    return out
