"""Socket permissions, peer allow-lists and limits: refused clearly, others still served."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.service.secret.v3 import sds_pb2_grpc

from scm.sds import DEFAULT, SdsServer, SecretRenderer, SecretStore, ServerOptions
from scm.sds.admission import AdmissionLimits
from scm.sds.listeners import UnixListener
from scm.sds.service import Limits
from tests.certs import TestCA
from tests.integration.sds.client import metric, read, request, secrets_of, serving, until

NOBODY = 65534


def connect_as(uid: int, path: Path) -> socket.socket:
    """A connection to ``path`` opened by a child process running as ``uid``.

    The child only connects and hands the socket back (SCM_RIGHTS); the kernel keeps
    the child's credentials on the connection, which is what SO_PEERCRED reports.
    """
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (child)
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            connection.connect(str(path))
            socket.send_fds(theirs, [b"fd"], [connection.fileno()])
        finally:
            os._exit(0)
    _, fds, _, _ = socket.recv_fds(ours, 2, 1)
    os.waitpid(pid, 0)
    assert fds, f"uid {uid} could not connect to {path}"
    return socket.socket(fileno=fds[0])


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy bytes from ``reader`` to ``writer`` until EOF or a reset, then close ``writer``.

    A reset is how a refused peer's connection ends: it is the end of the copy, not an error
    for asyncio to report as an unhandled exception in the relay."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            writer.close()


@contextlib.asynccontextmanager
async def channel_over(connection: socket.socket, relay_path: Path) -> AsyncIterator[Any]:
    """A gRPC stub whose one connection is ``connection`` (relayed through ``relay_path``)."""

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        far_reader, far_writer = await asyncio.open_unix_connection(sock=connection)
        await asyncio.gather(pipe(reader, far_writer), pipe(far_reader, writer))

    server = await asyncio.start_unix_server(relay, path=str(relay_path))
    try:
        async with grpc.aio.insecure_channel(f"unix:{relay_path}") as channel:
            yield sds_pb2_grpc.SecretDiscoveryServiceStub(channel)
    finally:
        server.close()


def test_unix_socket_is_owner_only_and_group_makes_it_0660(
    store: SecretStore, socket_path: Path
) -> None:
    async def main() -> None:
        server = SdsServer(
            store, SecretRenderer(), ServerOptions(unix=(UnixListener(socket_path),))
        )
        await server.start()
        assert stat.S_IMODE(socket_path.stat().st_mode) == 0o600
        await server.stop(0)
        grouped = UnixListener(socket_path, group=str(NOBODY))
        server = SdsServer(store, SecretRenderer(), ServerOptions(unix=(grouped,)))
        await server.start()
        info = socket_path.stat()
        assert (stat.S_IMODE(info.st_mode), info.st_gid) == (0o660, NOBODY)
        await server.stop(0)

    asyncio.run(main())


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as another uid")
def test_peer_not_in_allow_list_gets_permission_denied(
    store: SecretStore, socket_path: Path
) -> None:
    async def main() -> None:
        async with serving(
            store,
            socket_path,
            admission=AdmissionLimits(allowed_uids=frozenset({os.geteuid()})),
            group=str(NOBODY),
        ) as (server, stub):  # fmt: skip
            os.chmod(socket_path.parent, 0o755)  # let the other uid reach the socket file
            other = connect_as(NOBODY, socket_path)
            async with channel_over(other, socket_path.parent / "relay.sock") as other_stub:
                with pytest.raises(grpc.aio.AioRpcError) as failure:
                    await other_stub.FetchSecrets(request([DEFAULT]))
            assert failure.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "uid is not allowed" in failure.value.details()
            assert metric(server, "scm_sds_rejected_total", reason="peer_not_allowed") == 1
            # the allowed uid is still served, through the same socket
            assert secrets_of(await stub.FetchSecrets(request([DEFAULT])))[0].name == DEFAULT

    asyncio.run(main())


def test_stream_limit_refuses_extra_streams_and_keeps_the_others(
    store: SecretStore, socket_path: Path, ca: TestCA
) -> None:
    async def main() -> None:
        async with serving(store, socket_path, limits=Limits(max_streams=3)) as (server, stub):
            calls = [stub.StreamSecrets() for _ in range(3)]
            for call in calls:
                await call.write(request([DEFAULT]))
                await read(call)
            extra = stub.StreamSecrets()
            await extra.write(request([DEFAULT]))
            with pytest.raises(grpc.aio.AioRpcError) as failure:
                await read(extra)
            assert failure.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "too many SDS streams (limit 3)" in failure.value.details()
            assert metric(server, "scm_sds_rejected_total", reason="too_many_streams") == 1
            store.put(DEFAULT, ca.credential())
            for call in calls:
                assert secrets_of(await read(call))[0].name == DEFAULT
                call.cancel()

    asyncio.run(main())


def test_oversized_request_is_refused_and_others_are_served(
    store: SecretStore, socket_path: Path
) -> None:
    async def main() -> None:
        async with serving(store, socket_path, max_message_bytes=4096) as (server, stub):
            big: Any = request([DEFAULT])
            big.node.user_agent_name = "x" * 10_000
            with pytest.raises(grpc.aio.AioRpcError) as failure:
                await stub.FetchSecrets(big)
            assert failure.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "larger than max" in failure.value.details()
            call = stub.StreamSecrets()
            await call.write(big)
            with pytest.raises(grpc.aio.AioRpcError) as stream_failure:
                await read(call)
            assert stream_failure.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            await until(lambda: not server.service.streams, "the broken stream to close")
            assert secrets_of(await stub.FetchSecrets(request([DEFAULT])))[0].name == DEFAULT

    asyncio.run(main())
