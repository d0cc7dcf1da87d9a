"""TDX TCB evaluation as Intel's Quote Verification Library does it.

TEE_TCB_SVN byte 0 is the TDX module's ISV SVN and byte 1 its major version. With version 0
the module is described by TCB Info's ``tdxModule`` and has no status of its own. With a
version above 0 it is described by the ``tdxModuleIdentities`` entry ``TDX_<version in
upper-case hex>``, whose levels give the module a status that converges with the platform's.
A TD report 1.5 is evaluated a second time on TEE_TCB_SVN2 (the TCB the TD runs on now, after
TD-preserving updates) to tell a TD that only needs a relaunch from an out-of-date platform.
"""

from __future__ import annotations

from scm.attestation import tcb
from scm.attestation.pck import PckExtension
from scm.attestation.quote import TdReport


class ModuleMismatch(Exception):
    """The TDX module is not one TCB Info describes."""


def module_identity_id(version: int) -> str:
    """The ``tdxModuleIdentities`` id of a TDX module major version (``TDX_0A`` for 10)."""
    return f"TDX_{version:02X}"


def module_identity(info: tcb.TcbInfo, version: int) -> tcb.TdxModuleIdentity:
    """The identity TCB Info gives a module of major ``version``."""
    if version == 0:
        if info.tdx_module is None:
            raise ModuleMismatch("TCB Info has no tdxModule")
        return info.tdx_module
    wanted = module_identity_id(version)
    if not info.tdx_module_identities:
        raise ModuleMismatch(f"TDX module version {version} but TCB Info has no module identities")
    for identity in info.tdx_module_identities:
        if identity.id.upper() == wanted:
            return identity
    raise ModuleMismatch(f"TCB Info has no identity for TDX module {wanted}")


def check_module(report: TdReport, info: tcb.TcbInfo) -> None:
    """MRSIGNER_SEAM must be the identity's signer; SEAMATTRIBUTES must be all zero.

    Intel compares SEAMATTRIBUTES byte by byte with the identity's attributes and with zero,
    without applying the attributes mask.
    """
    identity = module_identity(info, report.tee_tcb_svn[1])
    if report.mr_signer_seam != identity.mr_signer:
        raise ModuleMismatch("the TDX module's MRSIGNER_SEAM is not TCB Info's")
    if any(report.seam_attributes) or report.seam_attributes != identity.attributes:
        raise ModuleMismatch("the TDX module's SEAMATTRIBUTES are not zero or not TCB Info's")


def evaluate(info: tcb.TcbInfo, pck: PckExtension, report: TdReport) -> tcb.TcbStatus:
    """The TD's TCB status before the QE's status converges into it.

    Raises :class:`tcb.NoMatchingLevel` and :class:`ModuleMismatch`.
    """
    launch = _evaluate_svn(info, pck, report.tee_tcb_svn, "")
    if report.tee_tcb_svn2 is None or launch.status not in (
        tcb.OUT_OF_DATE,
        tcb.OUT_OF_DATE_CONFIGURATION_NEEDED,
    ):
        return launch
    try:
        current = _evaluate_svn(info, pck, report.tee_tcb_svn2, "_svn2")
    except tcb.NoMatchingLevel:
        # The TCB the TD runs on now is not covered: the launch status stands.
        return launch
    return tcb.relaunch(launch, current)


def _evaluate_svn(
    info: tcb.TcbInfo, pck: PckExtension, tee_tcb_svn: bytes, suffix: str
) -> tcb.TcbStatus:
    """Platform level on ``tee_tcb_svn``, converged with the module's own status."""
    platform = tcb.match_platform(
        info, pck.sgx_tcb_components, pck.pce_svn, tee_tcb_svn, f"platform{suffix}"
    )
    version = tee_tcb_svn[1]
    if version == 0:
        return platform
    identity = module_identity(info, version)
    module = tcb.match_module_level(
        identity.levels,
        tee_tcb_svn[0],
        f"TDX module {identity.id}",
        f"tdx_module{suffix}",
        identity.id,
    )
    return tcb.converge(platform, module)
