"""Can this compute host run SGX guests and TDX guests under nova? Each gap with its fix.

Host facts come from ``HostReport`` (scm.platform); versions and domain capabilities from
libvirt. A fact nobody could read is "unknown", never a failure.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from scm.errors import InputError
from scm.openstack.provider import VEPC_DEVICE
from scm.platform import HostReport
from scm.platform.domcaps import open_libvirt

Version = tuple[int, int, int]

# nova 34's own minimums (nova.virt.libvirt.driver); test_check_host pins them against nova.
NOVA_MIN_LIBVIRT: Version = (8, 0, 0)
NOVA_MIN_QEMU: Version = (6, 2, 0)
NOVA_MIN_LIBVIRT_STATELESS_FIRMWARE: Version = (8, 6, 0)
# SGX guests: QEMU 6.2 virtualizes SGX; libvirt 8.10 knows <memory model='sgx-epc'>.
MIN_QEMU_SGX: Version = (6, 2, 0)
MIN_LIBVIRT_SGX_EPC: Version = (8, 10, 0)
# Where Intel's TDX Quote Generation Service listens (tdx-qgs package default).
QGS_SOCKET = "var/run/tdx-qgs/qgs.socket"
FIRMWARE_DESCRIPTORS = "usr/share/qemu/firmware"


@dataclass(frozen=True)
class Check:
    """One requirement: ``ok`` is None when it could not be determined."""

    kind: str  # "sgx" or "tdx"
    name: str
    ok: bool | None
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class HostVersions:
    libvirt: Version | None = None
    qemu: Version | None = None


@dataclass(frozen=True)
class HostReadiness:
    checks: tuple[Check, ...]

    def ready(self, kind: str) -> bool:
        """True when every check for ``kind`` passed (unknowns do not count as passed)."""
        return all(c.ok for c in self.checks if c.kind == kind)

    def to_dict(self) -> dict[str, object]:
        return {
            "sgx_ready": self.ready("sgx"),
            "tdx_ready": self.ready("tdx"),
            "checks": [c.__dict__ for c in self.checks],
        }


def check_host(report: HostReport, versions: HostVersions | None = None) -> HostReadiness:
    """Run every SGX and TDX check against ``report`` (and libvirt/QEMU ``versions``)."""
    versions = versions or HostVersions()
    root = Path(report.root)
    return HostReadiness(
        checks=tuple(_sgx_checks(report, versions)) + tuple(_tdx_checks(report, versions, root))
    )


def _sgx_checks(report: HostReport, versions: HostVersions) -> Iterable[Check]:
    sgx = report.sgx
    yield Check(
        "sgx",
        "SGX enabled with EPC",
        sgx.enabled,
        f"{sgx.epc_total_mib} MiB EPC" if sgx.enabled else "no usable EPC or /dev/sgx_enclave",
        "enable SGX and a PRMRR size in the BIOS; use Linux 5.11+ with CONFIG_X86_SGX",
    )
    yield Check(
        "sgx",
        "flexible launch control",
        sgx.flc,
        "FLC present" if sgx.flc else "FLC missing or unknown",
        "set SGX Launch Control to unlocked in the BIOS",
    )
    vepc = VEPC_DEVICE in sgx.devices
    yield Check(
        "sgx",
        "KVM virtual EPC",
        vepc if sgx.enabled else None,
        f"{VEPC_DEVICE} {'present' if vepc else 'missing'}",
        "use Linux 5.13+ with CONFIG_X86_SGX_KVM and load kvm_intel",
    )
    provision = "/dev/sgx_provision" in sgx.devices
    yield Check(
        "sgx",
        "provisioning key access",
        provision if sgx.enabled else None,
        f"/dev/sgx_provision {'present' if provision else 'missing'}",
        "without it guests' DCAP quoting enclaves cannot get provisioning keys",
    )
    yield _version_check("sgx", "QEMU for SGX guests", versions.qemu, MIN_QEMU_SGX)
    yield _version_check("sgx", "libvirt sgx-epc devices", versions.libvirt, MIN_LIBVIRT_SGX_EPC)
    if report.libvirt is not None:
        yield Check(
            "sgx",
            "libvirt offers SGX",
            report.libvirt.sgx_supported,
            "domain capabilities <sgx supported=...>",
            "QEMU needs read/write access to /dev/sgx_vepc and /dev/sgx_provision",
        )


def _tdx_checks(report: HostReport, versions: HostVersions, root: Path) -> Iterable[Check]:
    tdx = report.tdx
    yield Check(
        "tdx",
        "TDX host (kvm_intel tdx)",
        tdx.host_enabled,
        "kvm_intel tdx=Y" if tdx.host_enabled else "kvm_intel tdx is not on",
        "enable TME-MT and TDX in the BIOS, boot a TDX host kernel and load kvm_intel tdx=1",
    )
    keys = tdx.keys_total
    yield Check(
        "tdx",
        "TDX key IDs (misc cgroup)",
        None if keys is None else keys > 0,
        "unknown" if keys is None else f"{keys} key IDs, one per trust domain",
        "mount cgroup v2 with the misc controller, or set [libvirt] num_intel_tdx_guests",
    )
    yield _version_check("tdx", "libvirt (nova minimum)", versions.libvirt, NOVA_MIN_LIBVIRT)
    yield _version_check("tdx", "QEMU (nova minimum)", versions.qemu, NOVA_MIN_QEMU)
    yield _version_check(
        "tdx",
        "libvirt stateless firmware",
        versions.libvirt,
        NOVA_MIN_LIBVIRT_STATELESS_FIRMWARE,
    )
    if report.libvirt is not None:
        yield Check(
            "tdx",
            "libvirt offers TDX",
            report.libvirt.tdx_supported,
            "domain capabilities <tdx supported=...>",
            "install a libvirt and QEMU built with TDX support; set [libvirt] "
            "cpu_mode = host-passthrough",
        )
    qgs = (root / QGS_SOCKET).exists()
    yield Check(
        "tdx",
        "quote generation service",
        qgs,
        f"/{QGS_SOCKET} {'present' if qgs else 'missing'}",
        "install and start Intel's tdx-qgs so that guests can get quotes",
    )
    firmware = _tdx_firmware(root / FIRMWARE_DESCRIPTORS)
    yield Check(
        "tdx",
        "UEFI firmware for TDX",
        bool(firmware),
        firmware or f"no descriptor in /{FIRMWARE_DESCRIPTORS} lists intel-tdx",
        "install OVMF built for TDX (Debian/Ubuntu: ovmf with OVMF.inteltdx.fd)",
    )


def _version_check(kind: str, name: str, have: Version | None, need: Version) -> Check:
    wanted = ".".join(map(str, need))
    if have is None:
        return Check(kind, name, None, f"version unknown (need {wanted}+)", "pass --libvirt-uri")
    shown = ".".join(map(str, have))
    return Check(kind, name, have >= need, f"{shown} (need {wanted}+)", f"upgrade to {wanted}+")


def _tdx_firmware(directory: Path) -> str:
    """The first QEMU firmware descriptor that declares the ``intel-tdx`` feature."""
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else ():
        try:
            descriptor = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(descriptor, dict) and "intel-tdx" in descriptor.get("features", []):
            return f"/{FIRMWARE_DESCRIPTORS}/{path.name}"
    return ""


def parse_version(text: str) -> Version:
    """'9.0.0' -> (9, 0, 0); libvirt's integer form 9000000 is accepted too."""
    text = text.strip()
    if text.isdigit() and len(text) > 4:
        number = int(text)
        return (number // 1_000_000, number // 1000 % 1000, number % 1000)
    parts = text.split(".")
    if not 1 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        raise InputError(f"version {text!r} is not of the form MAJOR.MINOR.MICRO")
    numbers = [int(p) for p in parts] + [0] * (3 - len(parts))
    return (numbers[0], numbers[1], numbers[2])


def render_text(readiness: HostReadiness) -> str:
    lines = []
    for kind, title in (("sgx", "SGX guests"), ("tdx", "TDX guests")):
        verdict = "ready" if readiness.ready(kind) else "not ready"
        lines.append(f"{title}: {verdict}")
        for check in (c for c in readiness.checks if c.kind == kind):
            mark = {True: "ok  ", False: "FAIL", None: "?   "}[check.ok]
            lines.append(f"  [{mark}] {check.name}: {check.detail}")
            if check.ok is not True and check.fix:
                lines.append(f"         fix: {check.fix}")
    return "\n".join(lines) + "\n"


def versions_from_libvirt(uri: str, known: HostVersions) -> HostVersions:
    """Fill in the libvirt and QEMU versions a libvirt connection reports."""
    conn = open_libvirt(uri, "pass the versions")
    try:
        lib = known.libvirt or parse_version(str(conn.getLibVersion()))
        hypervisor = conn.getVersion()
        qemu = known.qemu or (parse_version(str(hypervisor)) if hypervisor else None)
    finally:
        conn.close()
    return HostVersions(libvirt=lib, qemu=qemu)
