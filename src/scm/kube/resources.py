"""What the device plugin advertises, derived from a HostReport.

Resource names are Intel's, so workloads written for Intel's device plugin keep working.
"""

from __future__ import annotations

from dataclasses import dataclass

from scm.platform import HostReport

SGX_ENCLAVE = "sgx.intel.com/enclave"
SGX_PROVISION = "sgx.intel.com/provision"
SGX_EPC = "sgx.intel.com/epc"
TDX_KEYS = "tdx.intel.com/keys"

_SGX_NODES = {SGX_ENCLAVE: "/dev/sgx_enclave", SGX_PROVISION: "/dev/sgx_provision"}


@dataclass(frozen=True)
class Resource:
    """One extended resource served by one plugin socket.

    ``device_nodes`` are host paths handed to every container that gets any of the devices;
    they are the host's own /dev paths whatever root the report was read from, because the
    container runtime resolves them on the host.
    """

    name: str
    device_ids: tuple[str, ...]
    device_nodes: tuple[str, ...] = ()

    @property
    def socket_name(self) -> str:
        """The plugin's socket file in the kubelet's device-plugin directory."""
        vendor, kind = self.name.split("/", 1)
        return f"scm-{vendor.split('.', 1)[0]}-{kind}.sock"


def resources_for(report: HostReport, sgx_shares: int) -> dict[str, Resource]:
    """The resources this host can serve now, keyed by name.

    SGX resources need their device node; TDX keys need an enabled TDX host with a known
    key count. A resource missing here that was served before has lost its device.
    """
    found: dict[str, Resource] = {}
    for name, node in _SGX_NODES.items():
        if node in report.sgx.devices and sgx_shares > 0:
            prefix = node.rsplit("_", 1)[1]
            ids = tuple(f"{prefix}-{i}" for i in range(sgx_shares))
            found[name] = Resource(name, ids, (node,))
    keys = report.tdx.keys_total or 0
    if report.tdx.host_enabled and keys > 0:
        found[TDX_KEYS] = Resource(TDX_KEYS, tuple(f"tdx-key-{i}" for i in range(keys)))
    return found
