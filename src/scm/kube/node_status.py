"""EPC registration without NFD: the node agent patches its own Node object.

The Node's status gets the extended resource ``sgx.intel.com/epc`` (bytes) and its metadata
the labels NFD would set. Both are JSON merge patches, so a ``null`` removes what the host
no longer has. TDX keys are not patched here: the device plugin owns that resource, and the
kubelet overwrites the capacity of any resource a device plugin serves.

Each pass reads the Node from the API server and patches only what differs there, so what
the API server lost (a Node deleted and registered again, a label removed by hand) is put
back on the next pass, and an unchanged Node costs one GET.

Who owns what in the Node's status: the kubelet owns capacity and allocatable of cpu,
memory, pods, hugepages, ephemeral storage and of every device-plugin resource, and on each
status update copies other extended resources from capacity to allocatable. scm writes only
``sgx.intel.com/epc``: in capacity, and in allocatable only where an allocatable map exists
(without one the API server defaults all of allocatable from capacity; writing part of it
would stop that), so the scheduler sees the EPC without waiting for the kubelet's next update.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx2  # lightkube's HTTP client: its errors are the ones a patch can raise
from lightkube import AsyncClient
from lightkube import ConfigError as KubeConfigError
from lightkube.resources.core_v1 import Node
from lightkube.types import PatchType

from scm.errors import ConfigError, InputError, UnavailableError
from scm.kube.quantity import whole_quantity
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
    """Keeps the Node named ``node_name`` carrying what the host offers, as the API has it."""

    def __init__(self, client: AsyncClient, node_name: str) -> None:
        self.client = client
        self.node_name = node_name

    async def publish(self, report: HostReport) -> None:
        wanted_capacity, wanted_labels = node_capacity(report), node_labels(report)
        node = await self._node()
        status = node.status
        capacity = (status.capacity if status is not None else None) or {}
        allocatable = status.allocatable if status is not None else None
        labels = (node.metadata.labels if node.metadata is not None else None) or {}

        status_patch: dict[str, Any] = {}
        if changed := _quantities_to_change(capacity, wanted_capacity):
            status_patch["capacity"] = changed
        if allocatable is not None and (
            changed := _quantities_to_change(allocatable, wanted_capacity)
        ):
            status_patch["allocatable"] = changed
        label_patch = {k: v for k, v in wanted_labels.items() if labels.get(k) != v}
        if status_patch:
            await self._patch(Node.Status, {"status": status_patch})
        if label_patch:
            await self._patch(Node, {"metadata": {"labels": label_patch}})
        if status_patch or label_patch:
            log.info("node %s: status %s, labels %s", self.node_name, status_patch, label_patch)

    async def _node(self) -> Node:
        try:
            return await self.client.get(Node, self.node_name)
        except httpx2.HTTPStatusError as exc:
            if exc.response.status_code == 404:
                raise UnavailableError(
                    f"node {self.node_name} is not registered with the API server (yet)"
                ) from None
            raise UnavailableError(f"cannot read node {self.node_name}: {_why(exc)}") from None
        except httpx2.HTTPError as exc:
            raise UnavailableError(f"cannot read node {self.node_name}: {_why(exc)}") from None

    async def _patch(self, resource: Any, body: dict[str, Any]) -> None:
        try:
            await self.client.patch(resource, self.node_name, body, patch_type=PatchType.MERGE)
        except httpx2.HTTPError as exc:
            raise UnavailableError(f"cannot patch node {self.node_name}: {_why(exc)}") from None


def _why(exc: httpx2.HTTPError) -> str:
    """One line: the status and the API server's message, or the transport error."""
    if isinstance(exc, httpx2.HTTPStatusError):
        return f"HTTP {exc.response.status_code} {exc.response.reason_phrase}"
    return str(exc) or type(exc).__name__


def _quantities_to_change(
    present: dict[str, str], wanted: dict[str, str | None]
) -> dict[str, str | None]:
    """The entries of ``wanted`` that ``present`` lacks, by value: the API server writes
    quantities in canonical form ("2000000" comes back as "2M")."""
    return {k: v for k, v in wanted.items() if _bytes(present.get(k)) != _bytes(v)}


def _bytes(quantity: str | None) -> int | None:
    if quantity is None:
        return None
    try:
        return whole_quantity(quantity)
    except InputError:
        return -1  # not a byte count (someone else wrote it): scm's value replaces it


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
