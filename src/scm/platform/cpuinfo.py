"""/proc/cpuinfo: the CPU's identity and the feature flags the kernel left enabled."""

from __future__ import annotations

from scm.record import Record


class CpuInfo(Record):
    """The first processor's identity and flags as the kernel reports them."""

    vendor: str | None = None
    model_name: str | None = None
    family: int | None = None
    model: int | None = None
    stepping: int | None = None
    flags: frozenset[str] = frozenset()
    logical_cpus: int = 0

    def has(self, flag: str) -> bool:
        return flag in self.flags


def parse_cpuinfo(text: str) -> CpuInfo:
    """Parse /proc/cpuinfo; fields that are missing or malformed stay None."""
    first: dict[str, str] = {}
    processors = 0
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip()
        if key == "processor":
            processors += 1
        if processors <= 1 and key not in first:
            first[key] = value.strip()
    return CpuInfo(
        vendor=first.get("vendor_id"),
        model_name=first.get("model name"),
        family=_int(first.get("cpu family")),
        model=_int(first.get("model")),
        stepping=_int(first.get("stepping")),
        flags=frozenset(first.get("flags", "").split()),
        logical_cpus=processors,
    )


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None
