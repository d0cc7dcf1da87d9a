"""A kubelet double: the Registration service and the kubelet's calls back into plugins.

It speaks the real v1beta1 protocol over Unix sockets, as the kubelet does: plugins
register on ``kubelet.sock``; after answering, the double dials the plugin's endpoint,
asks for its options and keeps a ListAndWatch stream open. A restart removes every socket
in the directory and listens on a new ``kubelet.sock``, as the kubelet does on start.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from scm._proto.deviceplugin.v1beta1 import deviceplugin_pb2 as api
from scm._proto.deviceplugin.v1beta1 import deviceplugin_pb2_grpc as api_grpc


@dataclass
class PluginView:
    """What the kubelet knows of one registered plugin."""

    request: api.RegisterRequest
    stub: api_grpc.DevicePluginStub
    channel: grpc.aio.Channel
    options: api.DevicePluginOptions | None = None
    devices: list[api.Device] = field(default_factory=list)
    updates: int = 0
    stream_ended: bool = False


class KubeletDouble(api_grpc.RegistrationServicer):
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.plugins: dict[str, PluginView] = {}
        self.registrations: list[api.RegisterRequest] = []
        self._server: grpc.aio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Condition()

    @property
    def socket(self) -> Path:
        return self.directory / "kubelet.sock"

    async def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        server = grpc.aio.server()
        api_grpc.add_RegistrationServicer_to_server(self, server)
        server.add_insecure_port(f"unix:{self.socket}")
        await server.start()
        self._server = server

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=None)
            self._server = None
        for task in self._tasks:
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for view in self.plugins.values():
            await view.channel.close()
        self.plugins.clear()
        self.socket.unlink(missing_ok=True)

    async def restart(self) -> None:
        """Go away and come back as a new kubelet: all device-plugin sockets are removed."""
        await self.stop()
        for path in self.directory.glob("*.sock"):
            path.unlink()
        await self.start()

    async def Register(
        self, request: api.RegisterRequest, context: grpc.aio.ServicerContext
    ) -> api.Empty:
        if request.version != "v1beta1":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "unsupported version")
        if "/" in request.endpoint:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "endpoint must be a file name")
        self.registrations.append(request)
        channel = grpc.aio.insecure_channel(f"unix:{self.directory / request.endpoint}")
        view = PluginView(request, api_grpc.DevicePluginStub(channel), channel)
        old = self.plugins.pop(request.resource_name, None)
        if old is not None:
            await old.channel.close()
        self.plugins[request.resource_name] = view
        # The kubelet answers first and dials the plugin afterwards.
        task = asyncio.create_task(self._watch(view))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return api.Empty()

    async def _watch(self, view: PluginView) -> None:
        view.options = await view.stub.GetDevicePluginOptions(api.Empty(), timeout=5)
        try:
            async for response in view.stub.ListAndWatch(api.Empty()):
                async with self._changed:
                    view.devices = list(response.devices)
                    view.updates += 1
                    self._changed.notify_all()
        except grpc.aio.AioRpcError:
            pass
        async with self._changed:
            view.stream_ended = True
            self._changed.notify_all()

    async def wait_for_devices(
        self, resource: str, health: str, count: int, timeout: float = 5.0
    ) -> list[api.Device]:
        """Wait until ``resource`` lists ``count`` devices, all with ``health``."""

        def ready() -> bool:
            view = self.plugins.get(resource)
            return (
                view is not None
                and len(view.devices) == count
                and all(d.health == health for d in view.devices)
            )

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(ready), timeout)
        return self.plugins[resource].devices

    async def wait_stream_ended(self, resource: str, timeout: float = 5.0) -> None:
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: self.plugins[resource].stream_ended), timeout
            )

    async def allocate(self, resource: str, *device_ids: str) -> api.AllocateResponse:
        request = api.AllocateRequest(
            container_requests=[api.ContainerAllocateRequest(devices_ids=list(device_ids))]
        )
        response: api.AllocateResponse = await self.plugins[resource].stub.Allocate(
            request, timeout=5
        )
        return response
