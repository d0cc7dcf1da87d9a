"""Hostile peers: a client that never reads, malformed messages, forged log lines, nonces.

One misbehaving local client must not hurt the other Envoys on the node; each test plays
the hostile peer over the real wire protocol and checks that the others are still served.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from scm.sds import DEFAULT, ROOTCA, SdsServer, SecretStore
from tests.certs import TestCA
from tests.integration.sds.client import fetch_secret, metric, read, request, serving
from tests.integration.sds.harness import ServerThread
from tests.integration.sds.rawh2 import RawGrpcClient, grpc_frame

REQUEST_BYTES = 200_000
HOSTILE_REQUESTS = 500  # 100 MB if the server read them all


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def big_request() -> bytes:
    """A valid DiscoveryRequest of about 200 KB (the server accepts up to 256 KiB)."""
    message: Any = request([ROOTCA])
    message.node.user_agent_name = "x" * REQUEST_BYTES
    return bytes(message.SerializeToString())


def test_a_client_that_never_reads_cannot_grow_the_server(
    start_server: Callable[..., ServerThread], socket_path: Path
) -> None:
    server = start_server()
    payload = grpc_frame(big_request())
    assert fetch_secret(socket_path, ROOTCA).name == ROOTCA  # warm up before measuring
    before = rss_bytes()
    hostile = RawGrpcClient(socket_path, read_window=0)
    try:
        stream = hostile.open("StreamSecrets")
        sent = 0
        for _ in range(HOSTILE_REQUESTS):
            # each request answers with a response the client never lets through
            if not hostile.send(stream, payload, deadline=time.monotonic() + 3):
                break
            sent += 1
        grown = rss_bytes() - before
        # flow control reached the client: it could not push its 100 MB in
        assert sent < HOSTILE_REQUESTS
        assert grown < 40 * 1024 * 1024, f"server grew by {grown / 2**20:.0f} MiB"
        # the others are served meanwhile, over the same socket
        assert fetch_secret(socket_path, ROOTCA).name == ROOTCA
        assert server.metric("scm_sds_requests_total", api="sotw") <= 3
    finally:
        hostile.close()


@pytest.mark.parametrize("method", ["StreamSecrets", "DeltaSecrets", "FetchSecrets"])
def test_malformed_protobuf_is_invalid_argument_counted_and_never_a_traceback(
    start_server: Callable[..., ServerThread],
    socket_path: Path,
    method: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = start_server()
    client = RawGrpcClient(socket_path, read_window=65535)
    try:
        with caplog.at_level(logging.DEBUG):
            stream = client.open(method)
            # field 1 as a varint whose bytes never end: no parser accepts this
            assert client.send(stream, grpc_frame(b"\x08" + b"\xff" * 11), time.monotonic() + 10)
            client.end(stream)
            trailers = client.status_of(stream)
    finally:
        client.close()
    assert trailers["grpc-status"] == str(grpc.StatusCode.INVALID_ARGUMENT.value[0])
    message = trailers.get("grpc-message", "")
    assert "not a valid" in message and "%0A" not in message and "\n" not in message
    assert server.metric("scm_sds_rejected_total", reason="malformed") == 1
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert fetch_secret(socket_path, ROOTCA).name == ROOTCA


FORGED = "x\nINFO scm.sds.issuer: issued default certificate for spiffe://evil"


def test_peer_text_is_logged_only_escaped(
    store: SecretStore, socket_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with serving(store, socket_path) as (server, stub):
            call = stub.StreamSecrets()
            first: Any = request([DEFAULT])
            first.node.id = FORGED
            first.node.cluster = FORGED
            await call.write(first)
            response = await read(call)
            nack = request([DEFAULT], response.nonce, "", error=FORGED)
            await call.write(nack)
            await _until_counted(server, "scm_sds_nacks_total", api="sotw")
            bad = request([FORGED])
            await call.write(bad)
            with pytest.raises(grpc.aio.AioRpcError):
                await read(call)

    with caplog.at_level(logging.DEBUG):
        asyncio.run(main())
    messages = [r.getMessage() for r in caplog.records]
    assert any("NACK" in m for m in messages)
    assert not [m for m in messages if "\n" in m], "a peer forged a log line"
    assert any("\\nINFO scm.sds.issuer" in m for m in messages)  # still readable, escaped


async def _until_counted(server: SdsServer, name: str, **labels: str) -> None:
    deadline = asyncio.get_running_loop().time() + 20
    while metric(server, name, **labels) < 1:
        assert asyncio.get_running_loop().time() < deadline, f"{name} never counted"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("nonce", ["1", "ff", "01"])
def test_a_nonce_the_stream_never_sent_ends_it(
    store: SecretStore, socket_path: Path, nonce: str
) -> None:
    async def main() -> None:
        async with serving(store, socket_path) as (server, stub):
            call = stub.StreamSecrets()
            await call.write(request([DEFAULT]))
            first = await read(call)
            assert first.nonce == "1"
            await call.write(request([DEFAULT], nonce if nonce != "1" else "2"))
            with pytest.raises(grpc.aio.AioRpcError) as failure:
                await read(call)
            assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "never sent" in failure.value.details()
            assert metric(server, "scm_sds_rejected_total", reason="unknown_nonce") == 1
            # another stream is unaffected
            other = stub.StreamSecrets()
            await other.write(request([DEFAULT]))
            assert (await read(other)).nonce == "1"
            other.cancel()
            store.put(DEFAULT, TestCA().credential())

    asyncio.run(main())
