"""CPUID through the Linux cpuid device (``/dev/cpu/N/cpuid``).

The device returns 16 bytes (EAX, EBX, ECX, EDX, little-endian) for a read at file
position ``(subleaf << 32) | leaf``. Positions, not byte offsets: leaf 7 and leaf 0x12
are 11 positions apart, so no regular file can stand in for the device. A regular
file at the device's path (a host root copied from another machine, a test fixture)
is therefore read as the text dump that ``cpuid -1 -r`` prints on that machine.
Only what SGX and TDX discovery needs is decoded.
"""

from __future__ import annotations

import os
import re
import stat

from scm.platform.root import HostRoot
from scm.record import Record

CPUID_DEVICE = "/dev/cpu/0/cpuid"
LEAF_FEATURES = 0x7
LEAF_SGX = 0x12
LEAF_TDX_GUEST = 0x21
TDX_GUEST_SIGNATURE = b"IntelTDX    "
MAX_EPC_SUBLEAVES = 32  # far above any real part; bounds a garbage dump
MAX_LINE_PROBLEMS = 3  # bad dump lines named one by one; the rest are counted
# Compiled where a dump is parsed (re caches it): most hosts have the device, not a dump,
# and compiling costs `scm inspect` most of a millisecond.
_DUMP_LINE = (
    r"^\s*(0x[0-9a-f]+)\s+(0x[0-9a-f]+):\s+eax=(0x[0-9a-f]+)\s+ebx=(0x[0-9a-f]+)"
    r"\s+ecx=(0x[0-9a-f]+)\s+edx=(0x[0-9a-f]+)\s*$"
)


class Registers(Record):
    """One CPUID answer: the four 32-bit registers."""

    eax: int
    ebx: int
    ecx: int
    edx: int


class CpuidEpcSection(Record):
    """An EPC section as CPUID leaf 0x12 enumerates it (physical base and size)."""

    base: int
    size_bytes: int


class CpuidFacts(Record):
    """What CPUID says about SGX and TDX; None where the leaf was not available."""

    sgx: bool | None = None
    sgx_lc: bool | None = None
    sgx1: bool | None = None
    sgx2: bool | None = None
    max_enclave_size_64: int | None = None
    secs_attributes: int | None = None
    epc_sections: tuple[CpuidEpcSection, ...] = ()
    tdx_guest: bool | None = None


class CpuidReader:
    """Reads leaves of one CPU's cpuid device (or a ``cpuid -1 -r`` dump) below a host root."""

    def __init__(self, root: HostRoot, device: str = CPUID_DEVICE) -> None:
        self._root = root
        self._device = device
        self._dump: dict[tuple[int, int], Registers] | None = None

    def available(self) -> bool:
        if not self._root.exists(self._device):
            return False
        try:
            mode = os.stat(self._root.resolve(self._device)).st_mode
        except OSError:
            return True  # let the read report why
        if stat.S_ISREG(mode):
            text = self._root.read_text(self._device)
            self._dump = parse_cpuid_dump(text or "", self._device, self._root.problems)
        elif not stat.S_ISCHR(mode):
            self._root.problems.append(
                f"{self._device} is not a regular file (a cpuid -r dump) nor the cpuid device"
            )
            return False
        return True

    def leaf(self, leaf: int, subleaf: int = 0) -> Registers | None:
        if self._dump is not None:
            return self._dump.get((leaf, subleaf))
        data = self._root.pread(self._device, 16, (subleaf << 32) | leaf)
        if data is None:
            return None
        if len(data) < 16:
            self._root.problems.append(
                f"{self._device}: leaf {leaf:#x}.{subleaf} is truncated ({len(data)} of 16 bytes)"
            )
            return None
        # Four little-endian 32-bit words (int.from_bytes: the struct module is not loaded).
        return Registers(*(int.from_bytes(data[i : i + 4], "little") for i in (0, 4, 8, 12)))


def parse_cpuid_dump(text: str, name: str, problems: list[str]) -> dict[tuple[int, int], Registers]:
    """Parse the first CPU of ``cpuid -1 -r`` output: ``0x00000007 0x00: eax=... edx=...``."""
    leaves: dict[tuple[int, int], Registers] = {}
    bad_lines = 0
    dump_line = re.compile(_DUMP_LINE, re.IGNORECASE)
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("CPU"):
            if leaves:
                break  # the first CPU is enough
            continue
        match = dump_line.match(stripped)
        if match is None:
            bad_lines += 1
            if bad_lines <= MAX_LINE_PROBLEMS:
                problems.append(
                    f"{name}: line {number} is not a cpuid -r record: {stripped[:40]!r}"
                )
            continue
        leaf, subleaf, *regs = (int(group, 16) for group in match.groups())
        leaves[(leaf, subleaf)] = Registers(*regs)
    if bad_lines > MAX_LINE_PROBLEMS:
        problems.append(
            f"{name}: {bad_lines - MAX_LINE_PROBLEMS} more lines are not cpuid -r records"
        )
    return leaves


def read_cpuid(root: HostRoot) -> CpuidFacts | None:
    """Decode SGX and TDX-guest facts from CPUID, or None when there is no cpuid device."""
    reader = CpuidReader(root)
    if not reader.available():
        return None
    basic = reader.leaf(0)
    if basic is None:
        return None
    root.sources_read += 1
    max_leaf = basic.eax
    facts: dict[str, object] = {}

    if max_leaf >= LEAF_FEATURES and (features := reader.leaf(LEAF_FEATURES)):
        facts["sgx"] = bool(features.ebx & (1 << 2))
        facts["sgx_lc"] = bool(features.ecx & (1 << 30))

    if facts.get("sgx") and max_leaf >= LEAF_SGX:
        facts.update(_sgx_leaf(reader))

    guest = reader.leaf(LEAF_TDX_GUEST)
    if guest is not None:
        signature = b"".join(r.to_bytes(4, "little") for r in (guest.ebx, guest.edx, guest.ecx))
        facts["tdx_guest"] = signature == TDX_GUEST_SIGNATURE
    return CpuidFacts(**facts)  # type: ignore[arg-type]


def _sgx_leaf(reader: CpuidReader) -> dict[str, object]:
    facts: dict[str, object] = {}
    capabilities = reader.leaf(LEAF_SGX, 0)
    if capabilities is not None:
        facts["sgx1"] = bool(capabilities.eax & 1)
        facts["sgx2"] = bool(capabilities.eax & 2)
        exponent = (capabilities.edx >> 8) & 0xFF
        facts["max_enclave_size_64"] = 1 << exponent if exponent else None
    attributes = reader.leaf(LEAF_SGX, 1)
    if attributes is not None:
        facts["secs_attributes"] = (
            attributes.eax | attributes.ebx << 32 | attributes.ecx << 64 | attributes.edx << 96
        )
    sections = []
    for subleaf in range(2, 2 + MAX_EPC_SUBLEAVES):
        regs = reader.leaf(LEAF_SGX, subleaf)
        if regs is None or regs.eax & 0xF != 1:  # type 0: no more sections
            break
        base = (regs.eax & 0xFFFFF000) | (regs.ebx & 0xFFFFF) << 32
        size = (regs.ecx & 0xFFFFF000) | (regs.edx & 0xFFFFF) << 32
        sections.append(CpuidEpcSection(base=base, size_bytes=size))
    facts["epc_sections"] = tuple(sections)
    return facts
