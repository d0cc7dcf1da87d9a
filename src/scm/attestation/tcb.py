"""TCB Info and QE Identity: their JSON models, level matching and status convergence.

The matching rules are Intel's (DCAP quote verification library): TCB levels are ordered
newest first and the first level whose every SVN is lower than or equal to the platform's
wins; the QE's and the TDX module's own statuses then converge with the platform status.
For TDX, TEE_TCB_SVN bytes 0-1 are the TDX module's own ISV SVN and major version: when the
version is above 0 they are left out of the platform match (the module is judged on its own
identity, see :mod:`scm.attestation.tdx`).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, overload

from scm.attestation import tcb_json
from scm.attestation.errors import CollateralError

UP_TO_DATE = "UpToDate"
SW_HARDENING_NEEDED = "SWHardeningNeeded"
CONFIGURATION_NEEDED = "ConfigurationNeeded"
CONFIGURATION_AND_SW_HARDENING_NEEDED = "ConfigurationAndSWHardeningNeeded"
OUT_OF_DATE = "OutOfDate"
OUT_OF_DATE_CONFIGURATION_NEEDED = "OutOfDateConfigurationNeeded"
REVOKED = "Revoked"
# Verdicts only (never in collateral): a TD 1.5 launched on an out-of-date TCB whose platform
# has since been updated in place (TD-preserving update); relaunching it would fix the status.
TD_RELAUNCH_ADVISED = "TDRelaunchAdvised"
TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED = "TDRelaunchAdvisedConfigurationNeeded"
COLLATERAL_STATUSES = (
    UP_TO_DATE,
    SW_HARDENING_NEEDED,
    CONFIGURATION_NEEDED,
    CONFIGURATION_AND_SW_HARDENING_NEEDED,
    OUT_OF_DATE,
    OUT_OF_DATE_CONFIGURATION_NEEDED,
    REVOKED,
)
STATUSES = (
    *COLLATERAL_STATUSES,
    TD_RELAUNCH_ADVISED,
    TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED,
)
NEEDS_CONFIGURATION = frozenset(
    {
        CONFIGURATION_NEEDED,
        OUT_OF_DATE_CONFIGURATION_NEEDED,
        CONFIGURATION_AND_SW_HARDENING_NEEDED,
        TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED,
    }
)


@dataclass(frozen=True)
class TcbLevel:
    sgx_components: tuple[int, ...]
    pce_svn: int
    tdx_components: tuple[int, ...]
    status: str
    date: str
    advisory_ids: tuple[str, ...]


@dataclass(frozen=True)
class ModuleLevel:
    """A TCB level keyed by one ISV SVN (QE Identity and TDX module identities)."""

    isv_svn: int
    status: str
    advisory_ids: tuple[str, ...]


@dataclass(frozen=True)
class TdxModuleIdentity:
    id: str
    mr_signer: bytes
    attributes: bytes
    attributes_mask: bytes
    levels: tuple[ModuleLevel, ...]


@dataclass(frozen=True)
class TcbInfo:
    id: str
    version: int
    issue_date: datetime
    next_update: datetime
    fmspc: bytes
    pce_id: bytes
    levels: Sequence[TcbLevel]
    tdx_module: TdxModuleIdentity | None
    tdx_module_identities: tuple[TdxModuleIdentity, ...]


@dataclass(frozen=True)
class QeIdentity:
    id: str
    version: int
    issue_date: datetime
    next_update: datetime
    misc_select: int
    misc_select_mask: int
    attributes: bytes
    attributes_mask: bytes
    mr_signer: bytes
    isv_prod_id: int
    levels: tuple[ModuleLevel, ...]


@dataclass(frozen=True)
class MatchedLevel:
    """One TCB level that took part in a verdict, for the verdict's JSON.

    ``role`` is ``platform``, ``tdx_module`` or ``qe``; the TD 1.5 evaluation on TEE_TCB_SVN2
    adds ``platform_svn2`` and ``tdx_module_svn2``.
    """

    role: str
    status: str
    tcb_date: str = ""
    isv_svn: int | None = None
    identity: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status}
        if self.tcb_date:
            out["tcb_date"] = self.tcb_date
        if self.isv_svn is not None:
            out["isv_svn"] = self.isv_svn
        if self.identity:
            out["id"] = self.identity
        return out


@dataclass(frozen=True)
class TcbStatus:
    status: str
    advisory_ids: tuple[str, ...] = ()
    # For a platform level: when a newer level superseded it (None for the newest level).
    superseded_at: datetime | None = None
    levels: tuple[MatchedLevel, ...] = ()


class TcbLevels(Sequence[TcbLevel]):
    """TCB Info's levels, each made into a :class:`TcbLevel` when first read.

    msgspec has checked every level already; matching stops at the first level the platform
    reaches (usually the first), so the others are never converted.
    """

    def __init__(self, decoded: Sequence[tcb_json.Level]) -> None:
        self._decoded = decoded
        self._levels: list[TcbLevel | None] = [None] * len(decoded)

    def __len__(self) -> int:
        return len(self._decoded)

    @overload
    def __getitem__(self, index: int) -> TcbLevel: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[TcbLevel]: ...

    def __getitem__(self, index: int | slice) -> TcbLevel | Sequence[TcbLevel]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        level = self._levels[index]
        if level is None:
            level = self._levels[index] = _tcb_level(self._decoded[index])
        return level


class NoMatchingLevel(Exception):
    """No TCB level covers the platform: its TCB is not supported by this collateral."""


def parse_tcb_info(text: str) -> TcbInfo:
    """Parse the signed ``tcbInfo`` JSON object (version 2 or 3)."""
    try:
        doc = tcb_json.TCB_INFO.decode(text)
        module = doc.tdxModule
        return TcbInfo(
            id=doc.id,
            version=tcb_json.version(doc),
            issue_date=parse_time(doc.issueDate),
            next_update=parse_time(doc.nextUpdate),
            fmspc=bytes.fromhex(doc.fmspc),
            pce_id=bytes.fromhex(doc.pceId),
            levels=TcbLevels(doc.tcbLevels),
            tdx_module=_module_identity(module, with_levels=False) if module else None,
            tdx_module_identities=tuple(_module_identity(m) for m in doc.tdxModuleIdentities or ()),
        )
    except (*tcb_json.ERRORS, ValueError) as exc:
        raise CollateralError(f"TCB Info is malformed: {exc}") from None


def parse_qe_identity(text: str) -> QeIdentity:
    """Parse the signed ``enclaveIdentity`` JSON object (version 2)."""
    try:
        doc = tcb_json.QE_IDENTITY.decode(text)
        return QeIdentity(
            id=doc.id,
            version=doc.version,
            issue_date=parse_time(doc.issueDate),
            next_update=parse_time(doc.nextUpdate),
            misc_select=int.from_bytes(bytes.fromhex(doc.miscselect), "big"),
            misc_select_mask=int.from_bytes(bytes.fromhex(doc.miscselectMask), "big"),
            attributes=bytes.fromhex(doc.attributes),
            attributes_mask=bytes.fromhex(doc.attributesMask),
            mr_signer=bytes.fromhex(doc.mrsigner),
            isv_prod_id=doc.isvprodid,
            levels=tuple(_module_level(level) for level in doc.tcbLevels),
        )
    except (*tcb_json.ERRORS, ValueError) as exc:
        raise CollateralError(f"QE Identity is malformed: {exc}") from None


def parse_time(text: str) -> datetime:
    """An RFC 3339 UTC time as Intel writes it (``2025-06-19T10:56:11Z``)."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"time {text!r} has no time zone")
    return value


def match_platform(
    info: TcbInfo,
    sgx_components: tuple[int, ...],
    pce_svn: int,
    tee_tcb_svn: bytes | None,
    role: str = "platform",
) -> TcbStatus:
    """The status of the first level the platform's SVNs reach (TDX: also the TEE TCB SVN).

    With a TDX module of major version > 0 (TEE_TCB_SVN byte 1), bytes 0-1 are the module's
    ISV SVN and version, not platform components: the comparison starts at byte 2.
    """
    skip = _module_bytes(tee_tcb_svn)
    platform_svn = tee_tcb_svn[skip:] if tee_tcb_svn is not None else None
    for index, level in enumerate(info.levels):
        if pce_svn < level.pce_svn or _below(sgx_components, level.sgx_components):
            continue
        if platform_svn is not None and _below(platform_svn, level.tdx_components[skip:]):
            continue
        newer = info.levels[index - 1].date if index else ""
        return TcbStatus(
            level.status,
            level.advisory_ids,
            parse_time(newer) if newer else None,
            (MatchedLevel(role, level.status, tcb_date=level.date),),
        )
    raise NoMatchingLevel("no TCB level matches the platform's SVNs")


def match_module_level(
    levels: tuple[ModuleLevel, ...], isv_svn: int, what: str, role: str, identity: str = ""
) -> TcbStatus:
    """The status of the first level whose ISV SVN the enclave or module reaches."""
    for level in levels:
        if isv_svn >= level.isv_svn:
            matched = MatchedLevel(role, level.status, isv_svn=level.isv_svn, identity=identity)
            return TcbStatus(level.status, level.advisory_ids, levels=(matched,))
    raise NoMatchingLevel(f"{what} ISV SVN {isv_svn} is below every TCB level")


def relaunch(launch: TcbStatus, current: TcbStatus) -> TcbStatus:
    """Intel's TD relaunch rule (TD report 1.5): out of date at launch, current on TEE_TCB_SVN2.

    The verdict keeps the launch level's advisories: they still apply until the TD relaunches.
    """
    levels = launch.levels + current.levels
    if launch.status in (OUT_OF_DATE, OUT_OF_DATE_CONFIGURATION_NEEDED) and current.status in (
        UP_TO_DATE,
        SW_HARDENING_NEEDED,
        CONFIGURATION_NEEDED,
        CONFIGURATION_AND_SW_HARDENING_NEEDED,
    ):
        configuration = {launch.status, current.status} & NEEDS_CONFIGURATION
        status = TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED if configuration else TD_RELAUNCH_ADVISED
        return TcbStatus(status, launch.advisory_ids, launch.superseded_at, levels)
    return TcbStatus(launch.status, launch.advisory_ids, launch.superseded_at, levels)


def converge(platform: TcbStatus, component: TcbStatus) -> TcbStatus:
    """Fold a QE or TDX module status into the platform status (Intel's convergence rule)."""
    status = platform.status
    if component.status == OUT_OF_DATE:
        if status in (UP_TO_DATE, SW_HARDENING_NEEDED):
            status = OUT_OF_DATE
        elif status in (CONFIGURATION_NEEDED, CONFIGURATION_AND_SW_HARDENING_NEEDED):
            status = OUT_OF_DATE_CONFIGURATION_NEEDED
    elif component.status == REVOKED:
        status = REVOKED
    advisories = list(platform.advisory_ids)
    advisories += [a for a in component.advisory_ids if a not in advisories]
    return TcbStatus(
        status, tuple(advisories), platform.superseded_at, platform.levels + component.levels
    )


def _module_bytes(tee_tcb_svn: bytes | None) -> int:
    """How many leading TEE_TCB_SVN bytes belong to the TDX module rather than the platform."""
    return 2 if tee_tcb_svn is not None and tee_tcb_svn[1] > 0 else 0


def _below(have: Sequence[int], need: Sequence[int]) -> bool:
    """Some SVN of ``have`` is lower than ``need``'s at the same place (map runs in C)."""
    return any(map(operator.lt, have, need))


def _tcb_level(level: tcb_json.Level) -> TcbLevel:
    tcb = level.tcb
    tdx = tuple(c.svn for c in tcb.tdxtcbcomponents) if isinstance(tcb, tcb_json.LevelTcbV3) else ()
    return TcbLevel(
        sgx_components=tcb.sgx_components(),
        pce_svn=tcb.pcesvn,
        tdx_components=tdx,
        status=level.tcbStatus,
        date=level.tcbDate,
        advisory_ids=tuple(level.advisoryIDs),
    )


def _module_level(level: tcb_json.ModuleLevel) -> ModuleLevel:
    return ModuleLevel(
        isv_svn=level.tcb.isvsvn,
        status=level.tcbStatus,
        advisory_ids=tuple(level.advisoryIDs),
    )


def _module_identity(doc: tcb_json.ModuleIdentity, with_levels: bool = True) -> TdxModuleIdentity:
    return TdxModuleIdentity(
        id=doc.id if with_levels else "",
        mr_signer=bytes.fromhex(doc.mrsigner),
        attributes=bytes.fromhex(doc.attributes),
        attributes_mask=bytes.fromhex(doc.attributesMask),
        levels=tuple(_module_level(level) for level in doc.tcbLevels) if with_levels else (),
    )
