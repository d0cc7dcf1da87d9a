"""A gRPC SDS client for protocol tests, and an in-process server to talk to."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.secret.v3 import sds_pb2_grpc
from google.rpc import status_pb2

from scm.sds import SdsServer, SecretRenderer, SecretStore, ServerOptions
from scm.sds.listeners import UnixListener
from scm.sds.render import SECRET_TYPE_URL

NODE = base_pb2.Node(id="test-node", cluster="test")


@contextlib.asynccontextmanager
async def serving(
    store: SecretStore,
    socket_path: Path,
    renderer: SecretRenderer | None = None,
    group: str | None = None,
    **options: Any,
) -> AsyncIterator[tuple[SdsServer, Any]]:
    """Start a server on ``socket_path`` and yield it with a connected stub."""
    server = SdsServer(
        store,
        renderer or SecretRenderer(),
        ServerOptions(unix=(UnixListener(socket_path, group),), **options),
    )
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"unix:{socket_path}") as channel:
            yield server, sds_pb2_grpc.SecretDiscoveryServiceStub(channel)
    finally:
        await server.stop(0)


def request(names: list[str], nonce: str = "", version: str = "", error: str | None = None) -> Any:
    message = discovery_pb2.DiscoveryRequest(
        node=NODE,
        type_url=SECRET_TYPE_URL,
        resource_names=names,
        response_nonce=nonce,
        version_info=version,
    )
    if error is not None:
        message.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
    return message


def delta_request(
    subscribe: list[str] = [],  # noqa: B006 (never mutated)
    unsubscribe: list[str] = [],  # noqa: B006
    nonce: str = "",
    initial: dict[str, str] | None = None,
    error: str | None = None,
) -> Any:
    message = discovery_pb2.DeltaDiscoveryRequest(
        node=NODE,
        type_url=SECRET_TYPE_URL,
        resource_names_subscribe=subscribe,
        resource_names_unsubscribe=unsubscribe,
        initial_resource_versions=initial or {},
        response_nonce=nonce,
    )
    if error is not None:
        message.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
    return message


def secrets_of(response: Any) -> list[Any]:
    """The Secret messages in a (delta) discovery response."""
    found = []
    for item in response.resources:
        packed = item.resource if hasattr(item, "resource") else item
        secret = secret_pb2.Secret()
        assert packed.Unpack(secret)
        found.append(secret)
    return found


async def read(call: Any, timeout: float = 5.0) -> Any:
    return await asyncio.wait_for(call.read(), timeout)


async def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Let the loop run until ``condition`` holds (bounded)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def metric(server: SdsServer, name: str, **labels: str) -> float:
    return server.metrics.registry.get_sample_value(name, labels) or 0.0


def fetch_secret(socket_path: Path, name: str) -> Any:
    """The Secret the server sends for ``name``, fetched with a plain gRPC client."""
    with grpc.insecure_channel(f"unix:{socket_path}") as channel:
        stub = sds_pb2_grpc.SecretDiscoveryServiceStub(channel)
        (secret,) = secrets_of(stub.FetchSecrets(request([name]), timeout=5))
    return secret
