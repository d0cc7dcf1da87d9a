"""One device plugin: the v1beta1 DevicePlugin service for one resource, on its own socket."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

from scm._proto.deviceplugin.v1beta1 import deviceplugin_pb2 as api
from scm._proto.deviceplugin.v1beta1 import deviceplugin_pb2_grpc as api_grpc
from scm.errors import UnavailableError
from scm.kube.resources import TDX_KEYS, Resource

log = logging.getLogger(__name__)

API_VERSION = "v1beta1"
KUBELET_SOCKET = "kubelet.sock"
HEALTHY = "Healthy"
UNHEALTHY = "Unhealthy"
REGISTER_TIMEOUT = 5.0


class DevicePluginService(api_grpc.DevicePluginServicer):
    """Answers the kubelet for one resource; ``update`` pushes a new list to every watcher."""

    def __init__(self, resource: Resource) -> None:
        self.resource = resource
        self.healthy = True
        self._version = 0
        self._closed = False
        self._changed = asyncio.Condition()

    async def update(self, resource: Resource, healthy: bool) -> None:
        """Replace the device list or health; watchers get the new list only on a change."""
        if resource == self.resource and healthy == self.healthy:
            return
        async with self._changed:
            self.resource, self.healthy = resource, healthy
            self._version += 1
            self._changed.notify_all()

    async def close(self) -> None:
        """End every ListAndWatch stream so the server can stop without waiting for them."""
        async with self._changed:
            self._closed = True
            self._changed.notify_all()

    def options(self) -> api.DevicePluginOptions:
        return api.DevicePluginOptions(
            pre_start_required=False, get_preferred_allocation_available=True
        )

    def device_list(self) -> api.ListAndWatchResponse:
        health = HEALTHY if self.healthy else UNHEALTHY
        return api.ListAndWatchResponse(
            devices=[api.Device(ID=i, health=health) for i in self.resource.device_ids]
        )

    async def GetDevicePluginOptions(
        self, request: api.Empty, context: grpc.aio.ServicerContext
    ) -> api.DevicePluginOptions:
        return self.options()

    async def ListAndWatch(
        self, request: api.Empty, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[api.ListAndWatchResponse]:
        while not self._closed:
            async with self._changed:
                seen = self._version
                response = self.device_list()
            yield response
            await self._wait_for_change(seen)

    async def _wait_for_change(self, seen: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._version != seen or self._closed)

    async def GetPreferredAllocation(
        self, request: api.PreferredAllocationRequest, context: grpc.aio.ServicerContext
    ) -> api.PreferredAllocationResponse:
        # Every device of a resource is alike: keep what must be included, then the lowest IDs,
        # so allocations pack from the start of the list and are easy to read in kubelet state.
        order = {device_id: n for n, device_id in enumerate(self.resource.device_ids)}
        answers = []
        for ask in request.container_requests:
            chosen = list(ask.must_include_deviceIDs)
            rest = sorted(
                (d for d in ask.available_deviceIDs if d not in chosen),
                key=lambda d: order.get(d, len(order)),
            )
            chosen += rest[: max(0, ask.allocation_size - len(chosen))]
            answers.append(api.ContainerPreferredAllocationResponse(deviceIDs=chosen))
        return api.PreferredAllocationResponse(container_responses=answers)

    async def Allocate(
        self, request: api.AllocateRequest, context: grpc.aio.ServicerContext
    ) -> api.AllocateResponse:
        known = set(self.resource.device_ids)
        answers = []
        for ask in request.container_requests:
            unknown = sorted(set(ask.devices_ids) - known)
            if unknown:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"{self.resource.name} has no device {unknown[0]}",
                )
            if not self.healthy:
                await context.abort(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"{self.resource.name} is unhealthy: its device node is gone",
                )
            answers.append(self._container_response(list(ask.devices_ids)))
        return api.AllocateResponse(container_responses=answers)

    async def PreStartContainer(
        self, request: api.PreStartContainerRequest, context: grpc.aio.ServicerContext
    ) -> api.PreStartContainerResponse:
        return api.PreStartContainerResponse()

    def _container_response(self, device_ids: list[str]) -> api.ContainerAllocateResponse:
        specs = [
            api.DeviceSpec(host_path=node, container_path=node, permissions="rw")
            for node in self.resource.device_nodes
        ]
        answer = api.ContainerAllocateResponse(devices=specs)
        if self.resource.name == TDX_KEYS:
            # Nothing to mount: the key ID is taken by the TD the runtime launches. The count
            # tells a Kata runtime (and a person reading the pod) how many were reserved.
            answer.annotations["tdx.intel.com/keys"] = str(len(device_ids))
        return answer


class ResourcePlugin:
    """The gRPC server of one resource on ``<socket_dir>/<resource.socket_name>``."""

    def __init__(self, resource: Resource, socket_dir: Path) -> None:
        self.service = DevicePluginService(resource)
        self.socket_path = socket_dir / resource.socket_name
        self._server: grpc.aio.Server | None = None

    @property
    def name(self) -> str:
        return self.service.resource.name

    @property
    def serving(self) -> bool:
        """True while our server runs and its socket file is still there."""
        return self._server is not None and self.socket_path.exists()

    async def start(self) -> None:
        """(Re)start the server on a fresh socket; raises UnavailableError when it cannot bind."""
        await self.stop()
        self.socket_path.unlink(missing_ok=True)
        fresh = DevicePluginService(self.service.resource)
        fresh.healthy = self.service.healthy
        self.service = fresh
        server = grpc.aio.server()
        api_grpc.add_DevicePluginServicer_to_server(self.service, server)  # type: ignore[no-untyped-call]
        try:
            server.add_insecure_port(f"unix:{self.socket_path}")
        except RuntimeError as exc:
            raise UnavailableError(f"cannot listen on {self.socket_path}: {exc}") from None
        await server.start()
        self._server = server

    async def register(self, kubelet_socket: Path) -> None:
        """Announce this plugin to the kubelet; raises UnavailableError if it does not answer."""
        request = api.RegisterRequest(
            version=API_VERSION,
            endpoint=self.socket_path.name,
            resource_name=self.name,
            options=self.service.options(),
        )
        async with grpc.aio.insecure_channel(f"unix:{kubelet_socket}") as channel:
            try:
                stub = api_grpc.RegistrationStub(channel)  # type: ignore[no-untyped-call]
                await stub.Register(request, timeout=REGISTER_TIMEOUT)
            except grpc.aio.AioRpcError as exc:
                raise UnavailableError(
                    f"kubelet at {kubelet_socket} refused {self.name}: "
                    f"{exc.code().name} {exc.details()}"
                ) from None

    async def update(self, resource: Resource, healthy: bool) -> None:
        await self.service.update(resource, healthy)

    async def stop(self) -> None:
        """Stop serving and remove our socket (a kubelet may have removed it already)."""
        if self._server is None:
            return
        await self.service.close()
        await self._server.stop(grace=1.0)
        self._server = None
        self.socket_path.unlink(missing_ok=True)
