"""The SGX parts of a nova guest config: EPC memory devices, NUMA cell, CPU features."""

from __future__ import annotations

from typing import Any

from lxml import etree
from nova import exception
from nova.virt.libvirt import config as vconfig
from oslo_utils import units

from scm.openstack.guest import epc_per_node, guest_cpu_features
from scm.platform import SgxReport


class LibvirtConfigGuestSgxEpc(vconfig.LibvirtConfigGuestDevice):  # type: ignore[misc]
    """``<memory model='sgx-epc'>``: EPC of ``size_kib`` on guest NUMA node ``node``."""

    def __init__(self, size_kib: int = 0, node: int = 0, **kwargs: Any) -> None:
        super().__init__(root_name="memory", **kwargs)
        self.size_kib = size_kib
        self.node = node

    def format_dom(self) -> Any:
        memory = super().format_dom()
        memory.set("model", "sgx-epc")
        target = etree.SubElement(memory, "target")
        size = etree.SubElement(target, "size", unit="KiB")
        size.text = str(self.size_kib)
        etree.SubElement(target, "node").text = str(self.node)
        return memory

    def parse_dom(self, xmldoc: Any) -> None:
        super().parse_dom(xmldoc)
        self.size_kib = int(xmldoc.findtext("target/size"))
        self.node = int(xmldoc.findtext("target/node"))


def add_sgx(guest: Any, epc_mb: int, host: SgxReport) -> None:
    """Give ``guest`` (a LibvirtConfigGuest) ``epc_mb`` MiB of EPC and the SGX CPU features.

    libvirt places an EPC device on a guest NUMA node, so a guest without a NUMA topology
    gets one cell holding all its vCPUs and memory; ``<maxMemory>`` grows by the EPC and by
    one slot per device, as for nova's other memory devices.
    """
    if guest.cpu is None:
        raise exception.InvalidInput(
            reason="SGX guests need a guest CPU definition: set [libvirt] cpu_mode to "
            "host-passthrough or host-model"
        )
    if guest.cpu.numa is None:
        guest.cpu.numa = _single_cell(guest)
    nodes = sorted(cell.id for cell in guest.cpu.numa.cells)
    devices = [
        LibvirtConfigGuestSgxEpc(size_kib=mib * units.Ki, node=node)
        for node, mib in epc_per_node(epc_mb, nodes)
    ]
    guest.max_memory_size = (guest.max_memory_size or guest.memory) + epc_mb * units.Ki
    guest.max_memory_slots += len(devices)
    for device in devices:
        guest.add_device(device)
    present = {feature.name for feature in guest.cpu.features}
    for name in guest_cpu_features(host):
        if name not in present:
            guest.cpu.add_feature(vconfig.LibvirtConfigGuestCPUFeature(name))


def _single_cell(guest: Any) -> Any:
    cell = vconfig.LibvirtConfigGuestCPUNUMACell()
    cell.id = 0
    cell.cpus = set(range(guest.vcpus))
    cell.memory = guest.memory
    numa = vconfig.LibvirtConfigGuestCPUNUMA()
    numa.cells.append(cell)
    return numa
