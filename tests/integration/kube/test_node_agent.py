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
from tests.integration.kube.apiserver import (
    MERGE_PATCH,
    ApiServerEmulator,
    Recorded,
    client_for,
)
from tests.integration.kube.kubelet_double import KubeletDouble

NODE = "sgx-worker-1"
EPC = "sgx.intel.com/epc"
SGX_LABEL = "intel.feature.node.kubernetes.io/sgx"


def fixture_epc_bytes(root: Path) -> int:
    files = root.glob("sys/devices/system/node/node*/x86/sgx_total_bytes")
    return sum(int(path.read_text()) for path in files)


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
        assert api.requests == [
            Recorded(
                "PATCH",
                f"/api/v1/nodes/{NODE}/status",
                MERGE_PATCH,
                {"status": {"capacity": {EPC: epc}}},
            ),
            Recorded(
                "PATCH",
                f"/api/v1/nodes/{NODE}",
                MERGE_PATCH,
                {
                    "metadata": {
                        "labels": {
                            SGX_LABEL: "true",
                            "intel.feature.node.kubernetes.io/tdx": None,
                        }
                    }
                },
            ),
        ]
        node = api.nodes[NODE]
        assert node["status"]["capacity"][EPC] == epc
        assert node["status"]["capacity"]["cpu"] == "2"
        assert node["metadata"]["labels"][SGX_LABEL] == "true"

        (root / "dev" / "sgx_enclave").unlink()
        await agent.step()
        assert len(api.requests) == 4
        assert EPC not in node["status"]["capacity"]
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
        assert f"cannot patch node {NODE}" in caplog.text
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
