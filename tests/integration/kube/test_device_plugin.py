"""The device plugin against a kubelet double speaking v1beta1 over Unix sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import pytest

from scm._proto.deviceplugin.v1beta1 import deviceplugin_pb2 as api
from scm.kube.manager import DevicePluginManager
from scm.kube.resources import SGX_ENCLAVE, SGX_PROVISION, TDX_KEYS
from tests.integration.kube.kubelet_double import KubeletDouble

SHARES = 4
HostRoot = Callable[[str], Path]
Scenario = Callable[[KubeletDouble, DevicePluginManager], Awaitable[None]]


def run(root: Path, kubelet_dir: Path, scenario: Scenario, start_kubelet: bool = True) -> None:
    async def main() -> None:
        kubelet = KubeletDouble(kubelet_dir)
        if start_kubelet:
            await kubelet.start()
        manager = DevicePluginManager(root, kubelet_dir, sgx_shares=SHARES)
        try:
            await scenario(kubelet, manager)
        finally:
            await manager.close()
            await kubelet.stop()

    asyncio.run(main())


def test_sgx_host_registers_enclave_and_provision_and_allocates_device_nodes(
    host_root: HostRoot, tmp_path: Path
) -> None:
    async def scenario(kubelet: KubeletDouble, manager: DevicePluginManager) -> None:
        await manager.reconcile()
        enclave = await kubelet.wait_for_devices(SGX_ENCLAVE, "Healthy", SHARES)
        await kubelet.wait_for_devices(SGX_PROVISION, "Healthy", SHARES)
        assert sorted(kubelet.plugins) == [SGX_ENCLAVE, SGX_PROVISION]
        request = kubelet.plugins[SGX_ENCLAVE].request
        assert (request.version, request.endpoint) == ("v1beta1", "scm-sgx-enclave.sock")
        assert (tmp_path / "k" / request.endpoint).is_socket()

        response = await kubelet.allocate(SGX_ENCLAVE, enclave[0].ID, enclave[1].ID)
        (container,) = response.container_responses
        assert [(d.host_path, d.container_path, d.permissions) for d in container.devices] == [
            ("/dev/sgx_enclave", "/dev/sgx_enclave", "rw")
        ]
        provision = await kubelet.allocate(SGX_PROVISION, "provision-0")
        assert provision.container_responses[0].devices[0].host_path == "/dev/sgx_provision"

    run(host_root("sgx-2socket"), tmp_path / "k", scenario)


def test_tdx_host_offers_one_device_per_key_id(host_root: HostRoot, tmp_path: Path) -> None:
    async def scenario(kubelet: KubeletDouble, manager: DevicePluginManager) -> None:
        await manager.reconcile()
        keys = await kubelet.wait_for_devices(TDX_KEYS, "Healthy", 63)
        assert len({d.ID for d in keys}) == 63
        view = kubelet.plugins[TDX_KEYS]
        assert view.options is not None and view.options.get_preferred_allocation_available

        preferred = await view.stub.GetPreferredAllocation(
            api.PreferredAllocationRequest(
                container_requests=[
                    api.ContainerPreferredAllocationRequest(
                        available_deviceIDs=["tdx-key-9", "tdx-key-3", "tdx-key-5", "tdx-key-7"],
                        must_include_deviceIDs=["tdx-key-7"],
                        allocation_size=2,
                    )
                ]
            )
        )
        assert list(preferred.container_responses[0].deviceIDs) == ["tdx-key-7", "tdx-key-3"]
        allocated = await kubelet.allocate(TDX_KEYS, "tdx-key-3")
        assert list(allocated.container_responses[0].devices) == []

    run(host_root("tdx-host"), tmp_path / "k", scenario)


def test_host_without_tee_registers_nothing(host_root: HostRoot, tmp_path: Path) -> None:
    async def scenario(kubelet: KubeletDouble, manager: DevicePluginManager) -> None:
        await manager.reconcile()
        assert kubelet.registrations == []
        assert [p.name for p in (tmp_path / "k").iterdir()] == ["kubelet.sock"]

    run(host_root("no-tee"), tmp_path / "k", scenario)


def test_removed_device_turns_unhealthy_and_recovers(host_root: HostRoot, tmp_path: Path) -> None:
    root = host_root("sgx-2socket")

    async def scenario(kubelet: KubeletDouble, manager: DevicePluginManager) -> None:
        await manager.reconcile()
        await kubelet.wait_for_devices(SGX_PROVISION, "Healthy", SHARES)

        (root / "dev" / "sgx_provision").unlink()
        await manager.reconcile()
        await kubelet.wait_for_devices(SGX_PROVISION, "Unhealthy", SHARES)
        await kubelet.wait_for_devices(SGX_ENCLAVE, "Healthy", SHARES)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await kubelet.allocate(SGX_PROVISION, "provision-0")
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION

        (root / "dev" / "sgx_provision").touch()
        await manager.reconcile()
        await kubelet.wait_for_devices(SGX_PROVISION, "Healthy", SHARES)

    run(root, tmp_path / "k", scenario)


def test_unknown_device_id_is_refused(host_root: HostRoot, tmp_path: Path) -> None:
    async def scenario(kubelet: KubeletDouble, manager: DevicePluginManager) -> None:
        await manager.reconcile()
        await kubelet.wait_for_devices(SGX_ENCLAVE, "Healthy", SHARES)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await kubelet.allocate(SGX_ENCLAVE, "enclave-99")
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    run(host_root("sgx-2socket"), tmp_path / "k", scenario)


def test_kubelet_restart_leads_to_a_new_registration(host_root: HostRoot, tmp_path: Path) -> None:
    async def scenario(kubelet: KubeletDouble, manager: DevicePluginManager) -> None:
        await manager.reconcile()
        await kubelet.wait_for_devices(TDX_KEYS, "Healthy", 63)
        assert sorted(r.resource_name for r in kubelet.registrations) == [
            SGX_ENCLAVE,
            SGX_PROVISION,
            TDX_KEYS,
        ]

        await kubelet.restart()
        assert not (tmp_path / "k" / "scm-tdx-keys.sock").exists()
        await manager.reconcile()
        names = [r.resource_name for r in kubelet.registrations]
        assert names.count(TDX_KEYS) == 2 and len(names) == 6
        await kubelet.wait_for_devices(TDX_KEYS, "Healthy", 63)
        assert (await kubelet.allocate(TDX_KEYS, "tdx-key-0")).container_responses

    run(host_root("tdx-host"), tmp_path / "k", scenario)


def test_missing_kubelet_and_directory_are_retried_not_fatal(
    host_root: HostRoot, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kubelet_dir = tmp_path / "k"

    async def scenario(kubelet: KubeletDouble, manager: DevicePluginManager) -> None:
        # No directory to bind in and no kubelet: each pass logs and carries on.
        await manager.reconcile()
        await manager.reconcile()
        assert "cannot listen on" in caplog.text
        assert caplog.text.count("cannot listen on") == 2  # once per resource, not per pass

        await kubelet.start()
        await manager.reconcile()
        await kubelet.wait_for_devices(SGX_ENCLAVE, "Healthy", SHARES)
        await kubelet.wait_for_devices(SGX_PROVISION, "Healthy", SHARES)

    run(host_root("sgx-2socket"), kubelet_dir, scenario, start_kubelet=False)


def test_shutdown_ends_streams_and_removes_sockets(host_root: HostRoot, tmp_path: Path) -> None:
    kubelet_dir = tmp_path / "k"

    async def scenario(kubelet: KubeletDouble, manager: DevicePluginManager) -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(manager.run(stop, poll_interval=0.05))
        await kubelet.wait_for_devices(SGX_ENCLAVE, "Healthy", SHARES)
        stop.set()
        await asyncio.wait_for(running, 5)
        await kubelet.wait_stream_ended(SGX_ENCLAVE)
        assert sorted(p.name for p in kubelet_dir.iterdir()) == ["kubelet.sock"]

    run(host_root("sgx-2socket"), kubelet_dir, scenario)
