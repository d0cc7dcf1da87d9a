"""The sysfs, cgroup and /dev facts about SGX and TDX that Linux exposes."""

from __future__ import annotations

from scm.platform.root import HostRoot
from scm.record import Record

NODE_DIR = "/sys/devices/system/node"
NODE_EPC = "x86/sgx_total_bytes"  # below each NUMA node's nodeN directory
MISC_CAPACITY = "/sys/fs/cgroup/misc.capacity"
KVM_INTEL = "/sys/module/kvm_intel"
SGX_DEVICES = ("/dev/sgx_enclave", "/dev/sgx_provision", "/dev/sgx_vepc")
LEGACY_SGX_DEVICES = ("/dev/isgx", "/dev/sgx/enclave", "/dev/sgx/provision")
TDX_GUEST_DEVICE = "/dev/tdx_guest"
TSM_REPORT_DIR = "/sys/kernel/config/tsm/report"
CONFIGFS_DIR = "/sys/kernel/config"

# Physical addresses have at most 52 bits: no EPC, and no misc count, can be larger.
MAX_SANE_COUNT = 1 << 52
MAX_NODES = 1024


class SysfsFacts(Record):
    """What sysfs, the misc cgroup, module parameters and /dev say about SGX and TDX."""

    epc_by_node: dict[int, int]
    misc_capacity: dict[str, int]
    kvm_intel_loaded: bool = False
    kvm_sgx: bool | None = None
    kvm_tdx: bool | None = None
    sgx_devices: tuple[str, ...] = ()
    legacy_sgx_devices: tuple[str, ...] = ()
    tdx_guest_device: bool = False
    tsm_report: bool = False
    configfs_mounted: bool = False


def read_sysfs(root: HostRoot) -> SysfsFacts:
    epc_by_node = {}
    nodes = [
        (int(name[4:]), path)
        for name in root.entries(NODE_DIR)
        if name.startswith("node") and name[4:].isascii() and name[4:].isdigit()
        if root.exists(path := f"{NODE_DIR}/{name}/{NODE_EPC}")
    ]
    if len(nodes) > MAX_NODES:
        # Linux allows at most 1024 NUMA nodes (MAX_NUMNODES): the rest is not a real sysfs.
        root.problems.append(
            f"{len(nodes)} NUMA nodes report EPC, more than Linux's {MAX_NODES}: "
            f"only the first {MAX_NODES} are read"
        )
        nodes = nodes[:MAX_NODES]
    for node, path in nodes:
        value = root.read_int(path, MAX_SANE_COUNT)
        if value is not None:
            epc_by_node[node] = value
    kvm_loaded = root.exists(KVM_INTEL)
    return SysfsFacts(
        epc_by_node=epc_by_node,
        misc_capacity=_misc_capacity(root),
        kvm_intel_loaded=kvm_loaded,
        kvm_sgx=root.read_flag(f"{KVM_INTEL}/parameters/sgx") if kvm_loaded else None,
        kvm_tdx=root.read_flag(f"{KVM_INTEL}/parameters/tdx") if kvm_loaded else None,
        sgx_devices=tuple(d for d in SGX_DEVICES if root.exists(d)),
        legacy_sgx_devices=tuple(d for d in LEGACY_SGX_DEVICES if root.exists(d)),
        tdx_guest_device=root.exists(TDX_GUEST_DEVICE),
        tsm_report=root.is_dir(TSM_REPORT_DIR),
        configfs_mounted=bool(root.entries(CONFIGFS_DIR)),
    )


def _misc_capacity(root: HostRoot) -> dict[str, int]:
    """Parse the misc cgroup's ``name value`` lines (e.g. ``sgx_epc``, ``tdx``)."""
    text = root.read_text(MISC_CAPACITY)
    capacity: dict[str, int] = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isascii() and parts[1].isdigit():
            if len(parts[1]) > 20 or int(parts[1]) > MAX_SANE_COUNT:
                root.problems.append(f"{MISC_CAPACITY}: {parts[0][:40]!r} is absurdly large")
                continue
            capacity[parts[0]] = int(parts[1])
        elif line.strip():
            root.problems.append(f"{MISC_CAPACITY}: cannot parse line {line.strip()[:40]!r}")
    return capacity
