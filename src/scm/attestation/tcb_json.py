"""The JSON shapes of Intel's TCB Info (v2, v3) and QE Identity, decoded by msgspec.

The whole document is decoded and type-checked in C, every level included (``json.loads``
then walking dicts in Python was most of a cold verification's non-signature time). Fields
Intel adds that verification does not use are skipped; a missing or mistyped field is a
``msgspec.ValidationError``. :mod:`scm.attestation.tcb` turns these into its models.
"""

from __future__ import annotations

import msgspec

# Field names are Intel's. gc=False: these objects hold no reference cycles, and objects the
# garbage collector does not track decode faster.


class Svn(msgspec.Struct, gc=False):
    svn: int


class LevelTcb(msgspec.Struct, gc=False):
    """A level's TCB: v3 lists its components, v2 names its 16 SGX components one by one."""

    pcesvn: int
    sgxtcbcomponents: list[Svn] | None = None
    tdxtcbcomponents: list[Svn] = msgspec.field(default_factory=list)
    sgxtcbcomp01svn: int | None = None
    sgxtcbcomp02svn: int | None = None
    sgxtcbcomp03svn: int | None = None
    sgxtcbcomp04svn: int | None = None
    sgxtcbcomp05svn: int | None = None
    sgxtcbcomp06svn: int | None = None
    sgxtcbcomp07svn: int | None = None
    sgxtcbcomp08svn: int | None = None
    sgxtcbcomp09svn: int | None = None
    sgxtcbcomp10svn: int | None = None
    sgxtcbcomp11svn: int | None = None
    sgxtcbcomp12svn: int | None = None
    sgxtcbcomp13svn: int | None = None
    sgxtcbcomp14svn: int | None = None
    sgxtcbcomp15svn: int | None = None
    sgxtcbcomp16svn: int | None = None

    def v2_components(self) -> tuple[int, ...]:
        """The 16 SGX components of a v2 level; ValueError when one is missing."""
        values = tuple(getattr(self, f"sgxtcbcomp{i:02d}svn") for i in range(1, 17))
        if any(value is None for value in values):
            raise ValueError("a TCB level lacks an sgxtcbcompNNsvn field")
        return values


class Level(msgspec.Struct, gc=False):
    tcb: LevelTcb
    tcbStatus: str
    tcbDate: str = ""
    advisoryIDs: list[str] = msgspec.field(default_factory=list)


class IsvSvn(msgspec.Struct, gc=False):
    isvsvn: int


class ModuleLevel(msgspec.Struct, gc=False):
    tcb: IsvSvn
    tcbStatus: str
    advisoryIDs: list[str] = msgspec.field(default_factory=list)


class ModuleIdentity(msgspec.Struct, gc=False):
    mrsigner: str
    attributes: str
    attributesMask: str
    id: str = ""
    tcbLevels: list[ModuleLevel] = msgspec.field(default_factory=list)


class TcbInfo(msgspec.Struct, gc=False):
    version: int
    issueDate: str
    nextUpdate: str
    fmspc: str
    pceId: str
    tcbLevels: list[Level]
    id: str = "SGX"
    tdxModule: ModuleIdentity | None = None
    tdxModuleIdentities: list[ModuleIdentity] | None = None


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
QE_IDENTITY = msgspec.json.Decoder(QeIdentity)
ERRORS = (msgspec.DecodeError, msgspec.ValidationError)
