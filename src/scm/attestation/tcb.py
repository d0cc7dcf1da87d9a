"""TCB Info and QE Identity: their JSON models, level matching and status convergence.

The matching rules are Intel's (DCAP quote verification library): TCB levels are ordered
newest first and the first level whose every SVN is lower than or equal to the platform's
wins; the QE's and the TDX module's own statuses then converge with the platform status.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scm.attestation.errors import CollateralError

UP_TO_DATE = "UpToDate"
SW_HARDENING_NEEDED = "SWHardeningNeeded"
CONFIGURATION_NEEDED = "ConfigurationNeeded"
CONFIGURATION_AND_SW_HARDENING_NEEDED = "ConfigurationAndSWHardeningNeeded"
OUT_OF_DATE = "OutOfDate"
OUT_OF_DATE_CONFIGURATION_NEEDED = "OutOfDateConfigurationNeeded"
REVOKED = "Revoked"
STATUSES = (
    UP_TO_DATE,
    SW_HARDENING_NEEDED,
    CONFIGURATION_NEEDED,
    CONFIGURATION_AND_SW_HARDENING_NEEDED,
    OUT_OF_DATE,
    OUT_OF_DATE_CONFIGURATION_NEEDED,
    REVOKED,
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
    levels: tuple[TcbLevel, ...]
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
class TcbStatus:
    status: str
    advisory_ids: tuple[str, ...] = ()
    # For a platform level: when a newer level superseded it (None for the newest level).
    superseded_at: datetime | None = None


class NoMatchingLevel(Exception):
    """No TCB level covers the platform: its TCB is not supported by this collateral."""


def parse_tcb_info(text: str) -> TcbInfo:
    """Parse the signed ``tcbInfo`` JSON object (version 2 or 3)."""
    doc = _load(text, "TCB Info")
    try:
        version = int(doc["version"])
        levels = tuple(_tcb_level(level, version) for level in doc["tcbLevels"])
        module = doc.get("tdxModule")
        identities = doc.get("tdxModuleIdentities") or []
        return TcbInfo(
            id=str(doc.get("id", "SGX")),
            version=version,
            issue_date=parse_time(doc["issueDate"]),
            next_update=parse_time(doc["nextUpdate"]),
            fmspc=bytes.fromhex(doc["fmspc"]),
            pce_id=bytes.fromhex(doc["pceId"]),
            levels=levels,
            tdx_module=_module_identity({**module, "id": "", "tcbLevels": []}) if module else None,
            tdx_module_identities=tuple(_module_identity(m) for m in identities),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CollateralError(f"TCB Info is malformed: {_describe(exc)}") from None


def parse_qe_identity(text: str) -> QeIdentity:
    """Parse the signed ``enclaveIdentity`` JSON object (version 2)."""
    doc = _load(text, "QE Identity")
    try:
        return QeIdentity(
            id=str(doc["id"]),
            version=int(doc["version"]),
            issue_date=parse_time(doc["issueDate"]),
            next_update=parse_time(doc["nextUpdate"]),
            misc_select=int.from_bytes(bytes.fromhex(doc["miscselect"]), "big"),
            misc_select_mask=int.from_bytes(bytes.fromhex(doc["miscselectMask"]), "big"),
            attributes=bytes.fromhex(doc["attributes"]),
            attributes_mask=bytes.fromhex(doc["attributesMask"]),
            mr_signer=bytes.fromhex(doc["mrsigner"]),
            isv_prod_id=int(doc["isvprodid"]),
            levels=tuple(_module_level(level) for level in doc["tcbLevels"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CollateralError(f"QE Identity is malformed: {_describe(exc)}") from None


def parse_time(text: str) -> datetime:
    """An RFC 3339 UTC time as Intel writes it (``2025-06-19T10:56:11Z``)."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"time {text!r} has no time zone")
    return value


def match_platform(
    info: TcbInfo, sgx_components: tuple[int, ...], pce_svn: int, tee_tcb_svn: bytes | None
) -> TcbStatus:
    """The status of the first level the platform's SVNs reach (TDX: also the TEE TCB SVN)."""
    for index, level in enumerate(info.levels):
        if pce_svn < level.pce_svn or _below(sgx_components, level.sgx_components):
            continue
        if tee_tcb_svn is not None and _below(tuple(tee_tcb_svn), level.tdx_components):
            continue
        newer = info.levels[index - 1].date if index else ""
        return TcbStatus(level.status, level.advisory_ids, parse_time(newer) if newer else None)
    raise NoMatchingLevel("no TCB level matches the platform's SVNs")


def match_module_level(levels: tuple[ModuleLevel, ...], isv_svn: int, what: str) -> TcbStatus:
    """The status of the first level whose ISV SVN the enclave or module reaches."""
    for level in levels:
        if isv_svn >= level.isv_svn:
            return TcbStatus(level.status, level.advisory_ids)
    raise NoMatchingLevel(f"{what} ISV SVN {isv_svn} is below every TCB level")


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
    return TcbStatus(status, tuple(advisories), platform.superseded_at)


def _below(have: tuple[int, ...], need: tuple[int, ...]) -> bool:
    return any(h < n for h, n in zip(have, need, strict=False))


def _load(text: str, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise CollateralError(f"{what} is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise CollateralError(f"{what} is not a JSON object")
    return doc


def _status(value: Any) -> str:
    if value not in STATUSES:
        raise ValueError(f"unknown TCB status {value!r}")
    return str(value)


def _tcb_level(level: dict[str, Any], version: int) -> TcbLevel:
    tcb = level["tcb"]
    if version >= 3:
        sgx = tuple(int(c["svn"]) for c in tcb["sgxtcbcomponents"])
        tdx = tuple(int(c["svn"]) for c in tcb.get("tdxtcbcomponents", ()))
    else:
        sgx = tuple(int(tcb[f"sgxtcbcomp{i:02d}svn"]) for i in range(1, 17))
        tdx = ()
    if len(sgx) != 16:
        raise ValueError(f"a TCB level has {len(sgx)} SGX components, not 16")
    return TcbLevel(
        sgx_components=sgx,
        pce_svn=int(tcb["pcesvn"]),
        tdx_components=tdx,
        status=_status(level["tcbStatus"]),
        date=str(level.get("tcbDate", "")),
        advisory_ids=tuple(level.get("advisoryIDs", ())),
    )


def _module_level(level: dict[str, Any]) -> ModuleLevel:
    return ModuleLevel(
        isv_svn=int(level["tcb"]["isvsvn"]),
        status=_status(level["tcbStatus"]),
        advisory_ids=tuple(level.get("advisoryIDs", ())),
    )


def _module_identity(doc: dict[str, Any]) -> TdxModuleIdentity:
    return TdxModuleIdentity(
        id=str(doc["id"]),
        mr_signer=bytes.fromhex(doc["mrsigner"]),
        attributes=bytes.fromhex(doc["attributes"]),
        attributes_mask=bytes.fromhex(doc["attributesMask"]),
        levels=tuple(_module_level(level) for level in doc["tcbLevels"]),
    )


def _describe(exc: Exception) -> str:
    return f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
