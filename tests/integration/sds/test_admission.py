"""Admission before any work: allow-lists, connection limits, refusals counted and quiet.

The flood tests need no root: the server allows only ``geteuid() + 1``, so the test
process itself is the refused peer. Where an allowed peer is needed as well, a child
process connects as another uid (root only, like the allow-list test beside it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.service.secret.v3 import sds_pb2_grpc

from scm.sds import DEFAULT, ROOTCA, SdsServer, SecretRenderer, SecretStore, ServerOptions
from scm.sds.admission import AdmissionLimits, RefusalLog
from scm.sds.listeners import UnixListener
from tests.integration.sds.client import metric, read, request, secrets_of, until
from tests.integration.sds.test_hardening import NOBODY, channel_over, connect_as

FLOOD = 1500


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


async def flood(path: Path, count: int) -> list[socket.socket]:
    """``count`` idle connections to ``path`` (they never speak).

    Connected with blocking calls in a thread while the server's loop accepts: a
    non-blocking (or timed) AF_UNIX connect against a full backlog fails with EAGAIN
    instead of completing later, and asyncio's sock_connect mistakes that for success.
    """

    def connect_all() -> list[socket.socket]:
        connections = []
        for _ in range(count):
            connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            connection.connect(str(path))  # blocking: waits for room in the backlog
            connections.append(connection)
        return connections

    return await asyncio.to_thread(connect_all)


async def start(store: SecretStore, path: Path, clock: FakeClock, **admission: Any) -> SdsServer:
    server = SdsServer(
        store,
        SecretRenderer(),
        ServerOptions(unix=(UnixListener(path),), admission=AdmissionLimits(**admission)),
        refusal_log=RefusalLog(clock),
    )
    await server.start()
    return server


def test_flood_from_a_disallowed_uid_is_refused_counted_and_logged_once_a_minute(
    store: SecretStore, socket_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()

    async def main() -> None:
        server = await start(store, socket_path, clock, allowed_uids=frozenset({os.geteuid() + 1}))
        try:
            # a refused client learns why, as a gRPC status
            async with grpc.aio.insecure_channel(f"unix:{socket_path}") as channel:
                stub = sds_pb2_grpc.SecretDiscoveryServiceStub(channel)
                with pytest.raises(grpc.aio.AioRpcError) as failure:
                    await stub.FetchSecrets(request([DEFAULT]), timeout=20)
            assert failure.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "uid is not allowed" in (failure.value.details() or "")

            before = open_descriptors()
            connections = await flood(socket_path, FLOOD)
            try:
                await until(
                    lambda: (
                        metric(server, "scm_sds_rejected_total", reason="peer_not_allowed")
                        >= FLOOD + 1
                    ),
                    "every refusal counted",
                    timeout=60,
                )
                # refusals in flight are bounded; the rest were closed at once
                bound = AdmissionLimits().max_refusals_in_flight + 8
                await until(
                    lambda: open_descriptors() - before - FLOOD <= bound,
                    f"the server to hold at most {bound} descriptors for the flood",
                    timeout=20,
                )
            finally:
                for connection in connections:
                    connection.close()
            clock.now += 61  # a minute later the next refusal is logged again
            (late,) = await flood(socket_path, 1)
            await until(
                lambda: (
                    metric(server, "scm_sds_rejected_total", reason="peer_not_allowed") >= FLOOD + 2
                ),
                "the late refusal counted",
            )
            late.close()
        finally:
            await server.stop(0)

    with caplog.at_level(logging.WARNING):
        asyncio.run(main())
    refusals = [r for r in caplog.records if "peer_not_allowed" in r.getMessage()]
    assert len(refusals) == 2, [r.getMessage() for r in refusals]
    assert not [r for r in caplog.records if r.exc_info or "Too many open files" in r.getMessage()]


def test_connections_per_uid_are_limited_and_the_refusal_is_a_status(
    store: SecretStore, socket_path: Path
) -> None:
    clock = FakeClock()

    async def main() -> None:
        server = await start(store, socket_path, clock, max_connections_per_uid=2)
        channels = [
            # each channel its own connection, as separate Envoys would have
            grpc.aio.insecure_channel(
                f"unix:{socket_path}", options=[("grpc.use_local_subchannel_pool", 1)]
            )
            for _ in range(3)
        ]
        try:
            calls = []
            for channel in channels[:2]:
                call = sds_pb2_grpc.SecretDiscoveryServiceStub(channel).StreamSecrets()
                await call.write(request([DEFAULT]))
                await read(call, timeout=20)
                calls.append(call)
            stub = sds_pb2_grpc.SecretDiscoveryServiceStub(channels[2])
            with pytest.raises(grpc.aio.AioRpcError) as failure:
                await stub.FetchSecrets(request([DEFAULT]), timeout=20)
            assert failure.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert metric(server, "scm_sds_rejected_total", reason="too_many_connections_for_uid")
            # the admitted connections are still served
            for call in calls:
                await call.write(request([DEFAULT, ROOTCA]))
                assert len(secrets_of(await read(call, timeout=20))) == 2
                call.cancel()
        finally:
            for channel in channels:
                await channel.close()
            await server.stop(0)

    asyncio.run(main())


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as another uid")
def test_allowed_peers_are_served_while_a_disallowed_uid_floods(
    store: SecretStore, socket_path: Path
) -> None:
    clock = FakeClock()

    async def main() -> None:
        server = await start(store, socket_path, clock, allowed_uids=frozenset({NOBODY}))
        os.chmod(socket_path.parent, 0o755)  # let the other uid reach the socket file
        os.chmod(socket_path, 0o666)
        connections = await flood(socket_path, FLOOD)  # from root: not allowed
        try:
            allowed = connect_as(NOBODY, socket_path)
            async with channel_over(allowed, socket_path.parent / "relay.sock") as stub:
                response = await stub.FetchSecrets(request([DEFAULT]), timeout=20)
            assert secrets_of(response)[0].name == DEFAULT
            assert metric(server, "scm_sds_rejected_total", reason="peer_not_allowed") >= 1
        finally:
            for connection in connections:
                connection.close()
            await server.stop(0)

    asyncio.run(main())
