"""EPC registration without NFD: the node agent patches its own Node object.

The Node's status gets the extended resource ``sgx.intel.com/epc`` (bytes) and its metadata
the labels NFD would set. Both are JSON merge patches, so a ``null`` removes what the host
no longer has. TDX keys are not patched here: the device plugin owns that resource, and the
kubelet overwrites the capacity of any resource a device plugin serves.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx2  # lightkube's HTTP client: its errors are the ones a patch can raise
from lightkube import AsyncClient
from lightkube import ConfigError as KubeConfigError
from lightkube.resources.core_v1 import Node
from lightkube.types import PatchType

from scm.errors import ConfigError, UnavailableError
from scm.kube.resources import SGX_EPC
from scm.platform import HostReport
from scm.platform.render import NFD_PREFIX

log = logging.getLogger(__name__)

SGX_LABEL = f"{NFD_PREFIX}/sgx"
TDX_LABEL = f"{NFD_PREFIX}/tdx"


def node_capacity(report: HostReport) -> dict[str, str | None]:
    """The capacity entries scm owns: EPC bytes, or None to remove it."""
    epc = report.sgx.epc_total_bytes if report.sgx.enabled else None
    return {SGX_EPC: str(epc) if epc else None}


def node_labels(report: HostReport) -> dict[str, str | None]:
    """The labels scm owns, with None for those to remove."""
    return {
        SGX_LABEL: "true" if report.sgx.enabled else None,
        TDX_LABEL: "true" if report.tdx.host_enabled else None,
    }


class NodeStatusPublisher:
    """Patches the Node named ``node_name`` when what the host offers changes."""

    def __init__(self, client: AsyncClient, node_name: str) -> None:
        self.client = client
        self.node_name = node_name
        self._published: tuple[dict[str, str | None], dict[str, str | None]] | None = None

    async def publish(self, report: HostReport) -> None:
        wanted = (node_capacity(report), node_labels(report))
        if wanted == self._published:
            return
        capacity, labels = wanted
        await self._patch(Node.Status, {"status": {"capacity": capacity}})
        await self._patch(Node, {"metadata": {"labels": labels}})
        self._published = wanted
        log.info("node %s: capacity %s, labels %s", self.node_name, capacity, labels)

    async def _patch(self, resource: Any, body: dict[str, Any]) -> None:
        try:
            await self.client.patch(resource, self.node_name, body, patch_type=PatchType.MERGE)
        except httpx2.HTTPError as exc:
            raise UnavailableError(f"cannot patch node {self.node_name}: {exc}") from None


def node_status_publisher(node_name: str) -> NodeStatusPublisher:
    """A publisher using the pod's service account (or ~/.kube/config outside a cluster)."""
    if not node_name:
        raise ConfigError(
            "node-status registration needs the node's name: set --node-name or "
            "SCM_KUBE_NODE_NAME (the DaemonSet sets it from spec.nodeName)"
        )
    try:
        client = AsyncClient(field_manager="scm-node-agent")
    except KubeConfigError as exc:
        raise ConfigError(f"no Kubernetes API credentials: {exc}") from None
    return NodeStatusPublisher(client, node_name)
