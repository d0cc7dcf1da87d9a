"""DCAP quote verification: the full chain of trust, in Intel's order, then TCB matching.

1. PCK certificate chain to the pinned Intel SGX Root CA;
2. root CA and PCK CRLs (and revocation of every chain certificate);
3. TCB Info and QE Identity: issuer chains, signatures, validity windows;
4. the QE report, signed by the PCK key, binds the attestation key;
5. the quoting enclave is the one QE Identity describes;
6. the quote (header and body) is signed by the attestation key;
7. TCB level matching (SGX components + PCE SVN; TDX also TEE TCB SVN, the module identity
   and, for TD report 1.5, the relaunch evaluation on TEE_TCB_SVN2: :mod:`scm.attestation.tdx`),
   converged with the QE's and TDX module's statuses;
8. report attributes: debug, reserved TD attributes, SEPT_VE_DISABLE, MR_SERVICETD.

Work that is the same for many quotes (chains, CRLs, collateral signatures, the QE report
signature of a platform) is cached by content (:mod:`scm.attestation.chains`, and here);
time-dependent checks run on every call.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import TypeVar

from cryptography.hazmat.primitives.asymmetric import ec

from scm.attestation import tcb, tdx
from scm.attestation.cache import DigestCache
from scm.attestation.chains import (
    CA_CERTS,
    RevocationLists,
    issued_by_root,
    issuer,
    signed_by_leaf,
    verified_chain,
    verified_crls,
    verify_chain,
)
from scm.attestation.collateral import Collateral
from scm.attestation.errors import CollateralError, QuoteFormatError
from scm.attestation.pck import PckExtension, sgx_extension
from scm.attestation.quote import EnclaveReport, Quote, Report, TdReport, parse_quote
from scm.attestation.trust import (
    COLLATERAL_CACHE_SIZE,
    MALFORMED_CERTIFICATE_ERRORS,
    PLATFORM_CACHE_SIZE,
    TrustError,
    Window,
    attestation_public_key,
    check_windows,
    spki_key,
    verify_raw_signature,
)
from scm.attestation.verdict import Verdict

T = TypeVar("T")
# TD_ATTRIBUTES: reserved bits (TUD bits 1-7, SEC bits 8-27 and 29, OTHER bits 32-62) must be
# clear; SEPT_VE_DISABLE (bit 28) must be set so the guest is not open to #VE injection.
_TD_RESERVED = 0xFE | 0x0FFFFF00 | (1 << 29) | (0x7FFFFFFF << 32)
_TD_SEPT_VE_DISABLE = 1 << 28


class _Rejected(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def verify(
    quote: bytes | Quote,
    collateral: Collateral,
    now: int | float | datetime,
    *,
    allow_debug: bool = False,
    allow_service_td: bool = False,
) -> Verdict:
    """Verify ``quote`` against ``collateral`` at time ``now`` (Unix seconds or a datetime)."""
    try:
        parsed = quote if isinstance(quote, Quote) else parse_quote(quote)
    except QuoteFormatError as exc:
        return Verdict(reason="malformed_quote", message=str(exc))
    seconds = int(now.timestamp() if isinstance(now, datetime) else now)
    try:
        status = _verify_chain_of_trust(parsed, collateral, seconds)
    except _Rejected as exc:
        return Verdict(quote=parsed).rejected(exc.reason, str(exc))
    verdict = Verdict(
        status=status.status,
        advisory_ids=status.advisory_ids,
        quote=parsed,
        superseded_at=status.superseded_at,
        levels=status.levels,
    )
    if status.status == tcb.REVOKED:
        return verdict.rejected("tcb_revoked", "the platform's TCB level is revoked")
    problem = _attribute_problem(parsed, allow_debug, allow_service_td)
    return verdict.rejected(*problem) if problem else verdict


def clear_platform_caches() -> None:
    """Forget what is per platform (PCK chain, QE report, attestation key), keep collateral.

    What a verifier sees for a platform it has not met before (the benchmark's "new platform").
    """
    for cached in (_PLATFORMS, _QE_REPORTS, attestation_public_key, _TCB_RESULTS):
        cached.cache_clear()


def clear_caches() -> None:
    """Forget every cached verification result (they are also bounded and expire by time)."""
    for cached in (
        _TCB_RESULTS,
        _checked_collateral,
        _PLATFORMS,
        _QE_REPORTS,
        _parse_tcb_info,
        _parse_qe_identity,
        verified_chain,
        verified_crls,
        signed_by_leaf,
        attestation_public_key,
        issuer,
        issued_by_root,
        CA_CERTS,
    ):
        cached.cache_clear()


def _verify_chain_of_trust(quote: Quote, collateral: Collateral, now: int) -> tcb.TcbStatus:
    # 1. PCK chain
    platform = _pck_platform(quote.pck_chain_pem)
    pck = platform.pck
    _in_time(platform.windows, now)
    # 2. CRLs and revocation; 3. TCB Info and QE Identity (signatures cached per collateral)
    checked = _checked_collateral(collateral)
    crls, info, identity = checked.crls, checked.info, checked.identity
    _in_time(crls.windows, now)
    if crls.pck_issuer != platform.leaf_issuer:
        raise _Rejected(
            "collateral_mismatch", "the PCK CRL is from another CA than the PCK certificate"
        )
    if crls.pck_revokes(platform.leaf_serial):
        raise _Rejected("revoked", "the PCK certificate is revoked")
    if crls.root_revokes(platform.ca_serial):
        raise _Rejected("revoked", "the PCK CA certificate is revoked")
    _in_time(checked.info_windows, now)
    _in_time(checked.identity_windows, now)
    _check_collateral_kind(quote, info, identity)
    # 4. QE report signed by the PCK key, binding the attestation key
    if not _qe_report_signed(platform, quote.qe_report_raw, quote.qe_report_signature):
        raise _Rejected(
            "qe_report_signature_invalid",
            "the QE report signature does not verify with the PCK key",
        )
    expected = hashlib.sha256(quote.attestation_key + quote.qe_auth_data).digest()
    if quote.qe_report.report_data != expected + bytes(32):
        raise _Rejected(
            "qe_report_data_mismatch",
            "QE report data is not SHA-256(attestation key || QE auth data)",
        )
    # 5. QE identity
    qe_status = _match_qe_identity(quote.qe_report, identity)
    # 6. Quote signature
    key = _guard(lambda: attestation_public_key(quote.attestation_key), {})
    if not verify_raw_signature(key, quote.signature, quote.signed):
        raise _Rejected(
            "quote_signature_invalid",
            "the quote signature does not verify with the attestation key",
        )
    # 7. TCB levels
    if pck.fmspc != info.fmspc:
        raise _Rejected(
            "collateral_mismatch",
            f"FMSPC {pck.fmspc.hex()} of the PCK certificate is not TCB Info's {info.fmspc.hex()}",
        )
    if pck.pce_id != info.pce_id:
        raise _Rejected("collateral_mismatch", "PCE ID of the PCK certificate is not TCB Info's")
    report = quote.report
    td = (
        (report.tee_tcb_svn, report.tee_tcb_svn2, report.mr_signer_seam, report.seam_attributes)
        if isinstance(report, TdReport)
        else None
    )
    tcb_key = (
        collateral.tcb_info,
        collateral.qe_identity,
        platform.digest,
        quote.qe_report_raw,
        td,
    )
    result = _TCB_RESULTS.get(tcb_key)
    if result is None:
        result = _tcb_status(info, pck, report, qe_status)
        _TCB_RESULTS.put(tcb_key, result)
    if isinstance(result, tuple):
        raise _Rejected(*result)
    return result


def _tcb_status(
    info: tcb.TcbInfo, pck: PckExtension, report: Report, qe_status: tcb.TcbStatus
) -> tcb.TcbStatus | tuple[str, str]:
    """Step 7: the TCB levels, a pure function of collateral, platform and report SVNs.

    A rejection is returned as (reason, message) so that it can be remembered too.
    """
    try:
        if isinstance(report, TdReport):
            tdx.check_module(report, info)
            status = tdx.evaluate(info, pck, report)
        else:
            status = tcb.match_platform(info, pck.sgx_tcb_components, pck.pce_svn, None)
        return tcb.converge(status, qe_status)
    except tcb.NoMatchingLevel as exc:
        return "tcb_not_supported", f"TCB not supported: {exc}"
    except tdx.ModuleMismatch as exc:
        return "tdx_module_mismatch", str(exc)


@dataclass(frozen=True)
class _CheckedCollateral:
    """Collateral whose chains, CRLs and signatures verified; windows are checked per call."""

    crls: RevocationLists
    info: tcb.TcbInfo
    identity: tcb.QeIdentity
    info_windows: tuple[Window, ...]
    identity_windows: tuple[Window, ...]


@lru_cache(maxsize=COLLATERAL_CACHE_SIZE)
def _checked_collateral(collateral: Collateral) -> _CheckedCollateral:
    crls = _guard(
        lambda: verified_crls(
            collateral.root_ca_crl, collateral.pck_crl, collateral.pck_crl_issuer_chain
        ),
        {"chain_invalid": "collateral_chain_invalid"},
    )
    info, info_windows = _signed_collateral(collateral, "tcb_info", crls)
    identity, identity_windows = _signed_collateral(collateral, "qe_identity", crls)
    assert isinstance(info, tcb.TcbInfo) and isinstance(identity, tcb.QeIdentity)
    return _CheckedCollateral(crls, info, identity, info_windows, identity_windows)


def _guard(call: Callable[[], T], renames: dict[str, str]) -> T:
    """Run ``call`` and turn a TrustError into a rejection, renaming its reason if asked."""
    try:
        return call()
    except TrustError as exc:
        renames = {"chain_malformed": "malformed_collateral", **renames}
        raise _Rejected(renames.get(exc.reason, exc.reason), str(exc)) from None


def _in_time(windows: tuple[Window, ...], now: int) -> None:
    try:
        check_windows(windows, now)
    except TrustError as exc:
        raise _Rejected(f"collateral_{exc.reason}", str(exc)) from None


@dataclass(frozen=True)
class _Platform:
    """What verification needs from a PCK chain: small, so 10,000 platforms fit in memory."""

    digest: bytes  # SHA-256 of the PEM chain
    pck: PckExtension
    spki: bytes  # the PCK key: a key object would be 2 KiB, made again only for a new QE report
    leaf_issuer: bytes  # DER of the PCK certificate's issuer name
    leaf_serial: int
    ca_serial: int  # the PCK CA certificate's serial, for the root CA CRL
    windows: tuple[Window, ...]


_PLATFORMS: DigestCache[_Platform] = DigestCache(PLATFORM_CACHE_SIZE)
_QE_REPORTS: DigestCache[bool] = DigestCache(PLATFORM_CACHE_SIZE)
_PCK_CERTS = ("PCK certificate", "PCK CA certificate")
# TCB evaluation results (or the rejection) by collateral, platform and report SVNs.
_TCB_RESULTS: DigestCache[tcb.TcbStatus | tuple[str, str]] = DigestCache(PLATFORM_CACHE_SIZE)


def _pck_platform(pem: bytes) -> _Platform:
    digest = hashlib.sha256(pem).digest()
    platform = _PLATFORMS.get(digest)
    if platform is None:
        platform = _new_platform(digest, pem)
        _PLATFORMS.put(digest, platform)
    return platform


def _new_platform(digest: bytes, pem: bytes) -> _Platform:
    try:
        chain = verify_chain(pem, "PCK certificate chain", keep_leaf=False)
    except TrustError as exc:
        # The PCK chain is quote data: a certificate that does not parse is a malformed quote.
        reason = "malformed_quote" if exc.reason == "chain_malformed" else "pck_chain_invalid"
        raise _Rejected(reason, str(exc)) from None
    if len(chain.members) != 2:
        raise _Rejected(
            "pck_chain_invalid", "the PCK chain must be PCK certificate, PCK CA and root"
        )
    leaf, ca = chain.members
    try:
        pck = sgx_extension(leaf.signed.tbs, leaf.names)
    except (CollateralError, TrustError, ValueError, TypeError) as exc:
        raise _Rejected("pck_chain_invalid", str(exc)) from None
    # Certificates are not kept (memory): windows name them by their place in the chain.
    windows = tuple(
        Window(f"the {name} of the quote", w.not_before, w.not_after)
        for name, w in zip(_PCK_CERTS, chain.windows, strict=True)
    )
    return _Platform(
        digest,
        pck,
        leaf.names.spki,
        leaf.names.issuer,
        leaf.cert.serial_number,
        ca.cert.serial_number,
        windows,
    )


def _qe_report_signed(platform: _Platform, qe_report: bytes, signature: bytes) -> bool:
    """The QE report of a platform is the same in all its quotes: verify it once."""
    key = hashlib.sha256(platform.digest + qe_report + signature).digest()
    signed = _QE_REPORTS.get(key)
    if signed is None:
        pck_key = _guard(lambda: _pck_key(platform.spki), {})
        signed = verify_raw_signature(pck_key, signature, qe_report)
        _QE_REPORTS.put(key, signed)
    return signed


def _pck_key(spki: bytes) -> ec.EllipticCurvePublicKey:
    try:
        return spki_key(spki)
    except (TrustError, *MALFORMED_CERTIFICATE_ERRORS) as exc:
        raise TrustError("pck_chain_invalid", f"the PCK certificate's key: {exc}") from None


def _signed_collateral(
    collateral: Collateral, kind: str, crls: RevocationLists
) -> tuple[tcb.TcbInfo | tcb.QeIdentity, tuple[Window, ...]]:
    """Verify TCB Info or QE Identity: chain, revocation, signature; and their windows."""
    what = "TCB Info" if kind == "tcb_info" else "QE Identity"
    text: str = getattr(collateral, kind)
    try:
        chain = signed_by_leaf(
            getattr(collateral, f"{kind}_issuer_chain").encode(),
            f"{what} issuer chain",
            getattr(collateral, f"{kind}_signature"),
            text.encode(),
        )
    except TrustError as exc:
        reason = (
            f"{kind}_signature_invalid"
            if exc.reason == "signature_invalid"
            else "collateral_chain_invalid"
        )
        raise _Rejected(reason, str(exc)) from None
    if crls.root_revokes(chain.root_issued.serial_number):
        raise _Rejected("revoked", f"the {what} signing certificate is revoked")
    try:
        model = _parse_tcb_info(text) if kind == "tcb_info" else _parse_qe_identity(text)
    except CollateralError as exc:
        raise _Rejected("malformed_collateral", str(exc)) from None
    window = Window(what, int(model.issue_date.timestamp()), int(model.next_update.timestamp()))
    return model, (window, *chain.windows)


@lru_cache(maxsize=COLLATERAL_CACHE_SIZE)
def _parse_tcb_info(text: str) -> tcb.TcbInfo:
    return tcb.parse_tcb_info(text)


@lru_cache(maxsize=COLLATERAL_CACHE_SIZE)
def _parse_qe_identity(text: str) -> tcb.QeIdentity:
    return tcb.parse_qe_identity(text)


def _check_collateral_kind(quote: Quote, info: tcb.TcbInfo, identity: tcb.QeIdentity) -> None:
    if quote.is_tdx:
        ok = info.id == "TDX" and info.version >= 3 and identity.id == "TD_QE"
    else:
        ok = info.id == "SGX" and identity.id == "QE"
    if not ok:
        tee = "TDX" if quote.is_tdx else "SGX"
        raise _Rejected(
            "collateral_mismatch",
            f"{tee} quote with TCB Info {info.id} v{info.version} and QE Identity {identity.id}",
        )


def _match_qe_identity(report: EnclaveReport, identity: tcb.QeIdentity) -> tcb.TcbStatus:
    mask = identity.attributes_mask
    if report.mr_signer != identity.mr_signer:
        problem = "MRSIGNER"
    elif report.isv_prod_id != identity.isv_prod_id:
        problem = "ISVPRODID"
    elif (
        report.misc_select & identity.misc_select_mask
        != identity.misc_select & identity.misc_select_mask
    ):
        problem = "MISCSELECT"
    elif _masked(report.attributes, mask) != _masked(identity.attributes, mask):
        problem = "ATTRIBUTES"
    else:
        return tcb.match_module_level(identity.levels, report.isv_svn, "QE", "qe")
    raise _Rejected("qe_identity_mismatch", f"the QE report's {problem} is not QE Identity's")


def _attribute_problem(
    quote: Quote, allow_debug: bool, allow_service_td: bool
) -> tuple[str, str] | None:
    report = quote.report
    if report.debug and not allow_debug:
        return "debug_enabled", "debug mode is enabled"
    if isinstance(report, TdReport):
        attributes = report.td_attributes_value
        if attributes & _TD_RESERVED:
            return "td_attributes_invalid", "reserved TD attributes are set"
        if not attributes & _TD_SEPT_VE_DISABLE:
            return "td_attributes_invalid", "SEPT_VE_DISABLE is not set"
        if report.mr_servicetd is not None and any(report.mr_servicetd) and not allow_service_td:
            return "service_td_bound", "the TD is bound to a service TD (MR_SERVICETD is set)"
    return None


def _masked(value: bytes, mask: bytes) -> int:
    return int.from_bytes(value, "little") & int.from_bytes(mask, "little")
