"""The fleet page's sources: Kubernetes nodes' EPC and OpenStack placement's providers.

Each reads its peer through the client the owning domain uses (lightkube; openstacksdk)
and renders a table; summing pods' limits and reading usages is all the arithmetic here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
from lightkube import AsyncClient, KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.core.exceptions import ConfigError as KubeConfigError
from lightkube.resources.core_v1 import Node, Pod

from scm.console.html import Html, table, tag
from scm.console.sources import FleetSource
from scm.errors import ConfigError, InputError, UnavailableError
from scm.kube.quantity import format_bytes, parse_quantity
from scm.kube.resources import SGX_EPC, TDX_KEYS
from scm.platform.render import RC_SGX_EPC_MB

FINISHED_PHASES = frozenset({"Succeeded", "Failed"})


class KubernetesFleet:
    """Nodes with their ``sgx.intel.com/epc`` capacity and the EPC pods on them ask for."""

    title = "Kubernetes nodes"

    def __init__(self, client_factory: Callable[[], AsyncClient]) -> None:
        self._client_factory = client_factory

    @classmethod
    def from_kubeconfig(cls, path: Path) -> KubernetesFleet:
        try:
            config = KubeConfig.from_file(path)
        except (KubeConfigError, OSError, ValueError) as exc:
            raise ConfigError(f"cannot use kubeconfig {path}: {exc}") from None
        return cls(lambda: AsyncClient(config=config))

    async def section(self) -> Html:
        client = self._client_factory()
        try:
            nodes = [node async for node in client.list(Node)]
            pods = [pod async for pod in client.list(Pod, namespace="*")]
        except ApiError as exc:
            raise UnavailableError(f"the API server refused: {exc.status.message}") from None
        except httpx2.HTTPStatusError as exc:  # lightkube lets list errors through raw
            raise UnavailableError(
                f"the API server answered HTTP {exc.response.status_code}: "
                f"{_status_message(exc.response)}"
            ) from None
        except (httpx2.HTTPError, OSError) as exc:
            raise UnavailableError(f"cannot reach the API server: {exc}") from None
        finally:
            await client.close()
        allocated = epc_allocated(pods)
        rows = []
        for node in sorted(nodes, key=lambda n: (n.metadata.name or "") if n.metadata else ""):
            name = node.metadata.name if node.metadata else "?"
            capacity = (node.status.capacity if node.status else None) or {}
            epc = capacity.get(SGX_EPC)
            rows.append(
                [
                    tag("span", name, class_="node"),
                    format_bytes(_bytes(epc)) if epc is not None else "none",
                    format_bytes(allocated.get(name or "", 0)),
                    capacity.get(TDX_KEYS, "none"),
                ]
            )
        if not rows:
            return tag("p", "The cluster has no nodes.")
        return table(["node", "EPC capacity", "EPC allocated (pods' limits)", "TDX keys"], rows)


def _status_message(response: httpx2.Response) -> str:
    """The ``message`` of a Kubernetes Status body, bounded; the reason phrase otherwise."""
    try:
        message = response.json().get("message")
    except ValueError:
        message = None
    return str(message)[:200] if message else response.reason_phrase


def epc_allocated(pods: list[Pod]) -> dict[str, int]:
    """Bytes of EPC per node name, summed from the limits of pods still running there."""
    per_node: dict[str, int] = {}
    for pod in pods:
        if pod.spec is None or not pod.spec.nodeName:
            continue
        if pod.status is not None and pod.status.phase in FINISHED_PHASES:
            continue
        for container in pod.spec.containers:
            limits = (container.resources.limits if container.resources else None) or {}
            if SGX_EPC in limits:
                node = pod.spec.nodeName
                per_node[node] = per_node.get(node, 0) + _bytes(limits[SGX_EPC])
    return per_node


def _bytes(quantity: Any) -> int:
    try:
        return int(parse_quantity(quantity))
    except InputError:
        return 0


class PlacementFleet:
    """Resource providers with their ``CUSTOM_SGX_EPC_MB`` inventory, reserved and used."""

    title = "OpenStack placement"

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect

    @classmethod
    def from_cloud(cls, cloud: str) -> PlacementFleet:
        from scm.openstack.sdk import connect

        return cls(lambda: connect(cloud))

    async def section(self) -> Html:
        rows = await asyncio.to_thread(self._rows)
        if not rows:
            return tag("p", "No resource provider has SGX EPC inventory.")
        return table(["resource provider", "EPC total (MB)", "reserved", "used"], rows)

    def _rows(self) -> list[list[Html | str | None]]:
        from scm.openstack.sdk import cloud_errors

        rows: list[list[Html | str | None]] = []
        with cloud_errors():
            conn = self._connect()
            for provider in conn.placement.resource_providers():
                inventories = _json(conn, f"/resource_providers/{provider.id}/inventories")
                epc = inventories.get("inventories", {}).get(RC_SGX_EPC_MB)
                if epc is None:
                    continue
                usages = _json(conn, f"/resource_providers/{provider.id}/usages")
                rows.append(
                    [
                        tag("span", provider.name, class_="provider"),
                        str(epc.get("total")),
                        str(epc.get("reserved", 0)),
                        str(usages.get("usages", {}).get(RC_SGX_EPC_MB, 0)),
                    ]
                )
        return rows


def _json(conn: Any, path: str) -> dict[str, Any]:
    from openstack import exceptions

    response = conn.placement.get(path)
    exceptions.raise_from_response(response)
    document = response.json()
    return document if isinstance(document, dict) else {}


def fleet_sources(kubeconfig: Path | None, os_cloud: str | None) -> tuple[FleetSource, ...]:
    """The fleets configured on the command line, in page order."""
    fleets: list[FleetSource] = []
    if kubeconfig is not None:
        fleets.append(KubernetesFleet.from_kubeconfig(kubeconfig))
    if os_cloud is not None:
        fleets.append(PlacementFleet.from_cloud(os_cloud))
    return tuple(fleets)
