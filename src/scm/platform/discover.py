"""Discovery: combine cpuinfo, CPUID, sysfs, /dev and libvirt into one HostReport.

Each source may be missing; facts fill each other in, in order of authority (the
kernel's view first, then CPUID, then libvirt), and contradictions become
diagnostics a person can act on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scm.errors import DiscoveryError, InputError
from scm.platform.cpuid import CpuidFacts, read_cpuid
from scm.platform.cpuinfo import CpuInfo, parse_cpuinfo
from scm.platform.report import CpuSummary, EpcSection, HostReport, SgxReport, TdxReport
from scm.platform.root import HostRoot
from scm.platform.sysfs import SysfsFacts, read_sysfs

if TYPE_CHECKING:  # the XML side loads only when domain capabilities are given
    from pathlib import Path

    from scm.platform.domcaps import DomainCaps

# A report a person reads: beyond this many diagnostics, the rest are only counted.
MAX_DIAGNOSTICS = 40


def discover(root: Path | str = "/", domcaps_xml: str | None = None) -> HostReport:
    """Build the HostReport of the host whose files are below ``root``.

    Raises DiscoveryError only when nothing at all could be read.
    """
    host = HostRoot.open(root)
    diagnostics: list[str] = []
    cpuinfo_text = host.read_text("/proc/cpuinfo")
    cpu = parse_cpuinfo(cpuinfo_text) if cpuinfo_text is not None else None
    if cpuinfo_text is not None and cpu is not None and cpu.vendor is None:
        diagnostics.append("/proc/cpuinfo has no vendor_id: it is truncated or not cpuinfo")
    cpuid = read_cpuid(host)
    sysfs = read_sysfs(host)
    domcaps = None
    if domcaps_xml is not None:
        from scm.platform.domcaps import parse_domcaps

        try:
            domcaps = parse_domcaps(domcaps_xml)
        except InputError as exc:
            diagnostics.append(f"libvirt domain capabilities ignored: {exc}")
    if host.sources_read == 0 and domcaps is None and not _any_device(sysfs):
        raise DiscoveryError(f"nothing could be read under {host.path}: is it a Linux root?")

    sgx = _sgx(cpu, cpuid, sysfs, domcaps, diagnostics)
    tdx = _tdx(cpu, cpuid, sysfs, domcaps, diagnostics)
    return HostReport(
        root=str(host.path),
        cpu=_cpu_summary(cpu),
        sgx=sgx,
        tdx=tdx,
        libvirt=domcaps,
        diagnostics=cap_diagnostics(diagnostics + host.problems),
    )


def cap_diagnostics(notes: list[str], limit: int = MAX_DIAGNOSTICS) -> tuple[str, ...]:
    """Drop repeats (keeping order) and keep at most ``limit`` lines, the last one a count."""
    unique = list(dict.fromkeys(notes))
    if len(unique) <= limit:
        return tuple(unique)
    hidden = len(unique) - (limit - 1)
    return (*unique[: limit - 1], f"... and {hidden} more diagnostics")


def _any_device(sysfs: SysfsFacts) -> bool:
    return bool(sysfs.sgx_devices or sysfs.legacy_sgx_devices or sysfs.tdx_guest_device)


def _cpu_summary(cpu: CpuInfo | None) -> CpuSummary:
    if cpu is None:
        return CpuSummary()
    return CpuSummary(cpu.vendor, cpu.model_name, cpu.family, cpu.model, cpu.stepping)


def _first_known(*values: bool | None) -> bool | None:
    return next((v for v in values if v is not None), None)


def _sgx(
    cpu: CpuInfo | None,
    cpuid: CpuidFacts | None,
    sysfs: SysfsFacts,
    domcaps: DomainCaps | None,
    diagnostics: list[str],
) -> SgxReport:
    flag = cpu.has("sgx") if cpu else None
    cpuid_sgx = cpuid.sgx if cpuid else None
    # The kernel clears the flag when the BIOS disabled SGX, so CPUID can say more.
    supported = True if (flag or cpuid_sgx) else _first_known(cpuid_sgx, _absent_on_amd(cpu))
    flc = _first_known(
        True if cpu and cpu.has("sgx_lc") else None,
        cpuid.sgx_lc if cpuid and supported else None,
        domcaps.flc if domcaps else None,
        False if flag else None,
    )
    sections = _epc_sections(cpuid, sysfs, domcaps, diagnostics)
    total = _epc_total(sections, cpuid, sysfs, supported)
    devices = sysfs.sgx_devices + sysfs.legacy_sgx_devices
    enabled = bool(total) and "/dev/sgx_enclave" in sysfs.sgx_devices
    report = SgxReport(
        supported=supported,
        enabled=enabled,
        flc=flc,
        sgx1=_first_known(cpuid.sgx1 if cpuid else None, domcaps.sgx1 if domcaps else None),
        sgx2=_first_known(cpuid.sgx2 if cpuid else None, domcaps.sgx2 if domcaps else None),
        epc_total_bytes=total,
        epc_sections=sections,
        devices=devices,
        kvm=sysfs.kvm_sgx,
        max_enclave_size_64=cpuid.max_enclave_size_64 if cpuid else None,
    )
    diagnostics.extend(_sgx_diagnostics(report, flag, cpuid, sysfs, domcaps))
    return report


def _absent_on_amd(cpu: CpuInfo | None) -> bool | None:
    """AMD and other non-Intel CPUs never have SGX; for Intel without CPUID we cannot tell."""
    if cpu is None or cpu.vendor is None:
        return None
    return False if cpu.vendor != "GenuineIntel" else None


def _epc_sections(
    cpuid: CpuidFacts | None,
    sysfs: SysfsFacts,
    domcaps: DomainCaps | None,
    diagnostics: list[str],
) -> tuple[EpcSection, ...]:
    cpuid_sections = sorted(cpuid.epc_sections, key=lambda s: s.base) if cpuid else []
    if sysfs.epc_by_node:
        nodes = sorted(sysfs.epc_by_node.items())
        # Linux assigns each CPUID section to the node owning its base address; nodes and
        # sections both ascend by address on real parts, so equal counts pair in order.
        bases: list[int | None] = [None] * len(nodes)
        if len(cpuid_sections) == len(nodes):
            bases = [s.base for s in cpuid_sections]
        elif cpuid_sections:
            diagnostics.append(
                f"CPUID enumerates {len(cpuid_sections)} EPC sections but sysfs shows EPC "
                f"on {len(nodes)} NUMA nodes"
            )
        return tuple(
            EpcSection(size_bytes=size, node=node, base=base)
            for (node, size), base in zip(nodes, bases, strict=True)
        )
    if cpuid_sections:
        return tuple(EpcSection(size_bytes=s.size_bytes, base=s.base) for s in cpuid_sections)
    if domcaps and domcaps.sections:
        return tuple(EpcSection(size_bytes=s.size_bytes, node=s.node) for s in domcaps.sections)
    return ()


def _epc_total(
    sections: tuple[EpcSection, ...],
    cpuid: CpuidFacts | None,
    sysfs: SysfsFacts,
    supported: bool | None,
) -> int | None:
    if sections:
        return sum(s.size_bytes for s in sections)
    if "sgx_epc" in sysfs.misc_capacity:
        return sysfs.misc_capacity["sgx_epc"]
    if cpuid is not None and cpuid.sgx is not None:
        return 0  # CPUID answered and enumerated no EPC section
    if supported is False:
        return 0
    return None


def _sgx_diagnostics(
    sgx: SgxReport,
    flag: bool | None,
    cpuid: CpuidFacts | None,
    sysfs: SysfsFacts,
    domcaps: DomainCaps | None,
) -> list[str]:
    notes = []
    has_epc = bool(sgx.epc_total_bytes)
    if sgx.supported and not has_epc and sgx.epc_total_bytes is not None:
        notes.append(
            "SGX is supported by the CPU but has no EPC: enable it in the BIOS "
            "(SGX 'Enabled', a PRMRR size, SGX Launch Control unlocked)"
        )
    elif sgx.supported and flag is False and cpuid and cpuid.sgx:
        notes.append(
            "CPUID reports SGX but the kernel disabled it (no 'sgx' flag in /proc/cpuinfo): "
            "check the BIOS settings and the kernel log"
        )
    if flag and sgx.flc is False:
        notes.append(
            "SGX has no flexible launch control (FLC): the in-kernel driver needs it; "
            "unlock SGX Launch Control in the BIOS"
        )
    if has_epc and "/dev/sgx_enclave" not in sgx.devices:
        notes.append(
            "EPC is present but /dev/sgx_enclave is missing: the kernel lacks CONFIG_X86_SGX "
            "or udev did not create the device node"
        )
    if "/dev/sgx_enclave" in sgx.devices and "/dev/sgx_provision" not in sgx.devices:
        notes.append(
            "/dev/sgx_provision is missing: enclaves cannot get provisioning keys, "
            "so DCAP attestation will not work"
        )
    if "/dev/isgx" in sgx.devices:
        notes.append(
            "the out-of-tree SGX driver (/dev/isgx) is loaded: use the in-kernel driver "
            "(Linux 5.11+) for DCAP attestation and VM EPC"
        )
    if sysfs.kvm_sgx and "/dev/sgx_vepc" not in sgx.devices:
        notes.append("KVM SGX is on but /dev/sgx_vepc is missing: VMs cannot be given EPC")
    misc_epc = sysfs.misc_capacity.get("sgx_epc")
    if misc_epc is not None and sysfs.epc_by_node and misc_epc != sgx.epc_total_bytes:
        notes.append(
            f"the misc cgroup's sgx_epc capacity ({misc_epc} bytes) differs from the EPC "
            f"in sysfs ({sgx.epc_total_bytes} bytes)"
        )
    if domcaps and domcaps.sgx_supported is False and sgx.enabled:
        notes.append(
            "libvirt does not offer SGX to guests although this host has EPC: QEMU 6.2+ "
            "with access to /dev/sgx_vepc is needed"
        )
    if domcaps and domcaps.sgx_supported and not sgx.enabled:
        notes.append(
            "libvirt reports SGX for guests but this host shows no usable EPC and "
            "/dev/sgx_enclave: the two views disagree"
        )
    return notes


def _tdx(
    cpu: CpuInfo | None,
    cpuid: CpuidFacts | None,
    sysfs: SysfsFacts,
    domcaps: DomainCaps | None,
    diagnostics: list[str],
) -> TdxReport:
    host_enabled = sysfs.kvm_tdx
    if host_enabled is None and sysfs.kvm_intel_loaded:
        # No 'tdx' parameter: the kernel predates TDX host support (Linux 6.16). Not worth a
        # diagnostic, since most CPUs such a kernel runs on have no TDX either.
        host_enabled = False
    elif host_enabled is None and cpu is not None and not cpu.has("vmx"):
        host_enabled = False  # no VT-x, so no KVM host of any kind
    keys = sysfs.misc_capacity.get("tdx")
    guest = bool((cpu and cpu.has("tdx_guest")) or (cpuid and cpuid.tdx_guest))
    guest = guest or sysfs.tdx_guest_device
    interface = None
    if guest:
        if sysfs.tsm_report:
            interface = "configfs-tsm"
        elif sysfs.tdx_guest_device:
            interface = "tdx_guest"
    report = TdxReport(
        host_enabled=host_enabled, keys_total=keys, guest=guest, quote_interface=interface
    )
    diagnostics.extend(_tdx_diagnostics(report, sysfs, domcaps))
    return report


def _tdx_diagnostics(tdx: TdxReport, sysfs: SysfsFacts, domcaps: DomainCaps | None) -> list[str]:
    notes = []
    if tdx.host_enabled and tdx.keys_total == 0:
        notes.append(
            "TDX is on in KVM but there are no TDX private key IDs: set the TME-MT/TDX "
            "key split in the BIOS"
        )
    if tdx.host_enabled and tdx.keys_total is None:
        notes.append(
            "TDX is on in KVM but the misc cgroup does not count TDX key IDs "
            "(/sys/fs/cgroup/misc.capacity has no 'tdx'): the number of TDs is unknown"
        )
    if sysfs.kvm_tdx is False:
        notes.append(
            "kvm_intel.tdx is off: boot with kvm_intel.tdx=1 (and TDX enabled in the BIOS) "
            "to host trust domains"
        )
    if tdx.guest and tdx.quote_interface is None:
        fix = "load the tdx_guest module"
        if not sysfs.configfs_mounted:
            fix = "mount configfs on /sys/kernel/config"
        notes.append(f"this trust domain has no quote interface: {fix}")
    if domcaps and domcaps.tdx_supported is False and tdx.host_enabled:
        notes.append(
            "libvirt does not offer TDX to guests although KVM has it on: newer QEMU and "
            "libvirt are needed"
        )
    return notes
