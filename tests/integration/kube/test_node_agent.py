"""The node agent: device plugins plus EPC registration via NFD or the Node object."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from scm.kube.agent import NodeAgent
from scm.kube.features import FeaturesFile
from scm.kube.manager import DevicePluginManager
from scm.kube.node_status import NodeStatusPublisher
from scm.kube.quantity import whole_quantity
from tests.integration.kube.apiserver import (
    MERGE_PATCH,
    ApiServerEmulator,
    Recorded,
    canonical,
    client_for,
)
from tests.integration.kube.kubelet_double import KubeletDouble

NODE = "sgx-worker-1"
EPC = "sgx.intel.com/epc"
SGX_LABEL = "intel.feature.node.kubernetes.io/sgx"


def fixture_epc_bytes(root: Path) -> int:
    files = root.glob("sys/devices/system/node/node*/x86/sgx_total_bytes")
    return sum(int(path.read_text()) for path in files)


def patches(api: ApiServerEmulator) -> list[Recorded]:
    return [r for r in api.requests if r.method == "PATCH"]


Scenario = Callable[[ApiServerEmulator, NodeAgent], Awaitable[None]]


def with_node_status_agent(root: Path, scenario: Scenario) -> None:
    """Run ``scenario`` with an agent patching node NODE of an API-server emulator."""

    async def main() -> None:
        api = ApiServerEmulator(NODE)
        client = client_for(await api.start())
        manager = DevicePluginManager(root, root / "no-kubelet", sgx_shares=2)
        try:
            await scenario(api, NodeAgent(manager, NodeStatusPublisher(client, NODE)))
        finally:
            await manager.close()
            await client.close()
            await api.stop()

    asyncio.run(main())


def test_node_status_gets_epc_and_label_then_loses_them_with_the_device(host_root) -> None:
    root = host_root("sgx-2socket")
    epc = str(fixture_epc_bytes(root))

    async def scenario(api: ApiServerEmulator, agent: NodeAgent) -> None:
        await agent.step()
        await agent.step()  # nothing changed: nothing sent
        assert patches(api) == [
            Recorded(
                "PATCH",
                f"/api/v1/nodes/{NODE}/status",
                MERGE_PATCH,
                {"status": {"capacity": {EPC: epc}, "allocatable": {EPC: epc}}},
            ),
            Recorded(
                "PATCH",
                f"/api/v1/nodes/{NODE}",
                MERGE_PATCH,
                # Only what differs: the Node has no tdx label to remove.
                {"metadata": {"labels": {SGX_LABEL: "true"}}},
            ),
        ]
        node = api.nodes[NODE]
        assert node["status"]["capacity"][EPC] == epc
        assert node["status"]["capacity"]["cpu"] == "2"
        assert node["metadata"]["labels"][SGX_LABEL] == "true"

        (root / "dev" / "sgx_enclave").unlink()
        await agent.step()
        assert len(patches(api)) == 4
        assert EPC not in node["status"]["capacity"]
        assert EPC not in node["status"]["allocatable"]
        assert SGX_LABEL not in node["metadata"]["labels"]
        assert node["metadata"]["labels"]["kubernetes.io/hostname"] == NODE

    with_node_status_agent(root, scenario)


def test_api_server_errors_are_logged_and_retried(
    host_root, caplog: pytest.LogCaptureFixture
) -> None:
    root = host_root("tdx-host")

    async def scenario(api: ApiServerEmulator, agent: NodeAgent) -> None:
        api.fail_with = 500
        await agent.step()
        await agent.step()
        assert f"cannot read node {NODE}: HTTP 500 Internal Server Error" in caplog.text
        assert EPC not in api.nodes[NODE]["status"]["capacity"]

        api.fail_with = None
        await agent.step()
        assert api.nodes[NODE]["status"]["capacity"][EPC] == str(fixture_epc_bytes(root))
        assert api.nodes[NODE]["metadata"]["labels"]["intel.feature.node.kubernetes.io/tdx"]

    with_node_status_agent(root, scenario)


def test_nfd_mode_keeps_the_features_file_and_serves_the_kubelet(
    host_root, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = host_root("tdx-host")
    features = tmp_path / "features.d" / "scm"

    async def main() -> None:
        kubelet = KubeletDouble(tmp_path / "k")
        await kubelet.start()
        manager = DevicePluginManager(root, tmp_path / "k", sgx_shares=2)
        agent = NodeAgent(manager, FeaturesFile(features))
        try:
            await agent.step()  # NFD's directory is not there yet: logged, retried
            assert "cannot write NFD features" in caplog.text
            await kubelet.wait_for_devices("tdx.intel.com/keys", "Healthy", 63)

            features.parent.mkdir()
            await agent.step()
            text = features.read_text()
            assert "intel.feature.node.kubernetes.io/sgx=true" in text.splitlines()
            assert f"sgx_epc_bytes={fixture_epc_bytes(root)}" in text.splitlines()
            assert "tdx_keys=63" in text.splitlines()
            inode = features.stat().st_ino
            await agent.step()
            assert features.stat().st_ino == inode  # unchanged features: not rewritten
        finally:
            await manager.close()
            await kubelet.stop()

    asyncio.run(main())


def test_node_registered_again_gets_its_epc_and_labels_back(
    host_root, caplog: pytest.LogCaptureFixture
) -> None:
    """A node that re-joins the cluster is a new Node object: the agent must notice that the
    API server lost what it published, not trust its own memory."""
    root = host_root("sgx-2socket")
    epc = fixture_epc_bytes(root)

    async def scenario(api: ApiServerEmulator, agent: NodeAgent) -> None:
        await agent.step()
        first = api.nodes[NODE]
        assert whole_quantity(first["status"]["capacity"][EPC]) == epc

        api.delete_node(NODE)
        await agent.step()  # gone: logged and retried, nothing created
        assert f"node {NODE} is not registered with the API server" in caplog.text
        assert NODE not in api.nodes

        api.register_node(NODE)
        assert api.nodes[NODE]["status"] == {}
        await agent.step()
        node = api.nodes[NODE]
        assert node["metadata"]["uid"] != first["metadata"]["uid"]
        assert whole_quantity(node["status"]["capacity"][EPC]) == epc
        assert node["metadata"]["labels"][SGX_LABEL] == "true"
        # The Node had no allocatable at all: the API server defaulted it from capacity.
        assert whole_quantity(node["status"]["allocatable"][EPC]) == epc

        api.kubelet_sync(NODE)  # the kubelet's own status update keeps scm's resource
        version = node["metadata"]["resourceVersion"]
        sent = len(patches(api))
        await agent.step()
        assert len(patches(api)) == sent and node["metadata"]["resourceVersion"] == version

    with_node_status_agent(root, scenario)


def test_what_others_remove_is_restored_and_only_scm_keys_are_written(host_root) -> None:
    root = host_root("sgx-2socket")
    epc = fixture_epc_bytes(root)

    async def scenario(api: ApiServerEmulator, agent: NodeAgent) -> None:
        node = api.nodes[NODE]
        await agent.step()
        # The node has a kubelet-owned allocatable: scm adds its own key, touches no other.
        (status_patch, _) = patches(api)
        assert status_patch.body == {
            "status": {"capacity": {EPC: str(epc)}, "allocatable": {EPC: str(epc)}}
        }
        assert node["status"]["allocatable"]["memory"] == "7Gi"

        del node["metadata"]["labels"][SGX_LABEL]  # kubectl label node ... sgx-
        del node["status"]["capacity"][EPC]
        await agent.step()
        assert node["metadata"]["labels"][SGX_LABEL] == "true"
        assert whole_quantity(node["status"]["capacity"][EPC]) == epc
        assert [p.body for p in patches(api)[2:]] == [
            {"status": {"capacity": {EPC: str(epc)}}},
            {"metadata": {"labels": {SGX_LABEL: "true"}}},
        ]

    with_node_status_agent(root, scenario)


def test_canonical_quantities_are_not_patched_again(host_root) -> None:
    """kube-apiserver answers "2000000" as "2M": equal quantities must compare equal."""
    root = host_root("sgx-2socket")

    async def scenario(api: ApiServerEmulator, agent: NodeAgent) -> None:
        await agent.step()
        sent = len(patches(api))
        node = api.nodes[NODE]
        node["status"]["capacity"][EPC] = canonical(str(fixture_epc_bytes(root)))
        for _ in range(3):
            await agent.step()
        assert len(patches(api)) == sent

    with_node_status_agent(root, scenario)
