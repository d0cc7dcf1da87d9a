"""What an SGX guest needs from its host, independent of nova: CPU features, EPC per node."""

from __future__ import annotations

from scm.platform import SgxReport


def guest_cpu_features(host: SgxReport) -> tuple[str, ...]:
    """libvirt CPU feature names an SGX guest requires, limited to what the host has.

    ``sgx-provisionkey`` lets the guest's quoting enclave get its provisioning key (DCAP).
    """
    features = ["sgx", "sgx-provisionkey"]
    if host.sgx1 is not False:
        features.append("sgx1")
    if host.flc:
        features.append("sgxlc")
    if host.sgx2:
        features.append("sgx2")
    return tuple(features)


def epc_per_node(epc_mb: int, nodes: list[int]) -> list[tuple[int, int]]:
    """Split ``epc_mb`` MiB over guest NUMA ``nodes``: [(node, MiB)], remainder on the first.

    Every node gets at least 1 MiB when there is enough EPC; nodes that would get none are
    left out rather than given an empty EPC device.
    """
    if epc_mb < 1 or not nodes:
        raise ValueError("EPC split needs a positive size and at least one node")
    share, rest = divmod(epc_mb, len(nodes))
    split = [(node, share + (rest if i == 0 else 0)) for i, node in enumerate(nodes)]
    return [(node, size) for node, size in split if size > 0]
