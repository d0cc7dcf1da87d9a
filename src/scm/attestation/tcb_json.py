"""The JSON shapes of Intel's TCB Info (v2, v3) and QE Identity, decoded by msgspec.

The whole document is decoded and checked in C, every level included: types, the statuses,
16 SGX components per level (``json.loads`` then walking dicts in Python was most of a cold
verification's non-signature time). Fields Intel adds that verification does not use are
skipped; a missing, mistyped or out-of-range field is a ``msgspec.ValidationError``.
:mod:`scm.attestation.tcb` turns these into its models, TCB levels only when matching
reaches them.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

# Field names are Intel's. gc=False: these objects hold no reference cycles, and objects the
# garbage collector does not track decode faster.


# The statuses a level of collateral can have (tcb.COLLATERAL_STATUSES; a test keeps them equal).
Status = Literal[
    "UpToDate",
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
    "Revoked",
]


class Svn(msgspec.Struct, gc=False):
    svn: int


class LevelTcbV2(msgspec.Struct, gc=False):
    """A TCB Info v2 level's TCB: its 16 SGX components are named one by one."""

    pcesvn: int
    sgxtcbcomp01svn: int
    sgxtcbcomp02svn: int
    sgxtcbcomp03svn: int
    sgxtcbcomp04svn: int
    sgxtcbcomp05svn: int
    sgxtcbcomp06svn: int
    sgxtcbcomp07svn: int
    sgxtcbcomp08svn: int
    sgxtcbcomp09svn: int
    sgxtcbcomp10svn: int
    sgxtcbcomp11svn: int
    sgxtcbcomp12svn: int
    sgxtcbcomp13svn: int
    sgxtcbcomp14svn: int
    sgxtcbcomp15svn: int
    sgxtcbcomp16svn: int

    def sgx_components(self) -> tuple[int, ...]:
        return tuple(getattr(self, name) for name in V2_COMPONENTS)


V2_COMPONENTS = tuple(f"sgxtcbcomp{i:02d}svn" for i in range(1, 17))


class LevelTcbV3(msgspec.Struct, gc=False):
    """A TCB Info v3 level's TCB: lists of components (TDX ones only in TDX TCB Info)."""

    pcesvn: int
    sgxtcbcomponents: Annotated[list[Svn], msgspec.Meta(min_length=16, max_length=16)]
    tdxtcbcomponents: list[Svn] = msgspec.field(default_factory=list)

    def sgx_components(self) -> tuple[int, ...]:
        return tuple(c.svn for c in self.sgxtcbcomponents)


class LevelV2(msgspec.Struct, gc=False):
    tcb: LevelTcbV2
    tcbStatus: Status
    tcbDate: str = ""
    advisoryIDs: list[str] = msgspec.field(default_factory=list)


class LevelV3(msgspec.Struct, gc=False):
    tcb: LevelTcbV3
    tcbStatus: Status
    tcbDate: str = ""
    advisoryIDs: list[str] = msgspec.field(default_factory=list)


Level = LevelV2 | LevelV3


class IsvSvn(msgspec.Struct, gc=False):
    isvsvn: int


class ModuleLevel(msgspec.Struct, gc=False):
    tcb: IsvSvn
    tcbStatus: Status
    advisoryIDs: list[str] = msgspec.field(default_factory=list)


class ModuleIdentity(msgspec.Struct, gc=False):
    mrsigner: str
    attributes: str
    attributesMask: str
    id: str = ""
    tcbLevels: list[ModuleLevel] = msgspec.field(default_factory=list)


class _TcbInfo(msgspec.Struct, gc=False, kw_only=True):
    """What TCB Info v2 and v3 share; their levels differ, and ``version`` tells which."""

    issueDate: str
    nextUpdate: str
    fmspc: str
    pceId: str
    id: str = "SGX"
    tdxModule: ModuleIdentity | None = None
    tdxModuleIdentities: list[ModuleIdentity] | None = None


class TcbInfoV2(_TcbInfo, tag_field="version", tag=2):
    tcbLevels: list[LevelV2]


class TcbInfoV3(_TcbInfo, tag_field="version", tag=3):
    tcbLevels: list[LevelV3]


TcbInfo = TcbInfoV2 | TcbInfoV3


class QeIdentity(msgspec.Struct, gc=False):
    id: str
    version: int
    issueDate: str
    nextUpdate: str
    miscselect: str
    miscselectMask: str
    attributes: str
    attributesMask: str
    mrsigner: str
    isvprodid: int
    tcbLevels: list[ModuleLevel]


TCB_INFO = msgspec.json.Decoder(TcbInfo)


def version(doc: TcbInfo) -> int:
    """The TCB Info version (the tag msgspec chose the type by)."""
    return 2 if isinstance(doc, TcbInfoV2) else 3


QE_IDENTITY = msgspec.json.Decoder(QeIdentity)
ERRORS = (msgspec.DecodeError, msgspec.ValidationError)
