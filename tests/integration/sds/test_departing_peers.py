"""Peers that leave while the server is writing to them: one debug line each, no traceback.

Each peer is a raw HTTP/2 client whose receive window is shut, so the server's write (the
first response, or a rotation pushed later) is still pending in gRPC when the peer resets
its stream or closes its socket. grpc.aio fails such a write; left to grpc.aio, the
failure is logged as an internal error with a traceback (for every such peer, not once
in a while). Envoys come and go all the time: a security product's log must show that
as a peer leaving, and the server must go on serving everyone else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from scm.sds import DEFAULT
from tests.certs import TestCA
from tests.integration.sds.client import delta_request, fetch_secret, request
from tests.integration.sds.harness import ServerThread, wait_for
from tests.integration.sds.rawh2 import RawGrpcClient, grpc_frame
from tests.integration.sds.test_workers import pool_metric

PEERS = 20
API = {"StreamSecrets": "sotw", "DeltaSecrets": "delta", "FetchSecrets": "fetch"}
CASES = [
    ("StreamSecrets", "first response", "reset"),
    ("StreamSecrets", "first response", "close"),
    ("StreamSecrets", "rotation", "reset"),
    ("StreamSecrets", "rotation", "close"),
    ("DeltaSecrets", "first response", "close"),
    ("DeltaSecrets", "rotation", "close"),
    ("FetchSecrets", "response", "reset"),
    ("FetchSecrets", "response", "close"),
]


def open_peer(socket_path: Path, method: str, window: int) -> tuple[RawGrpcClient, int]:
    """A peer on its own connection that has asked for DEFAULT."""
    peer = RawGrpcClient(socket_path, read_window=window)
    stream = peer.open(method)
    message = delta_request([DEFAULT]) if method == "DeltaSecrets" else request([DEFAULT])
    assert peer.send(stream, grpc_frame(message.SerializeToString()), time.monotonic() + 20)
    if method == "FetchSecrets":
        peer.end(stream)
    return peer, stream


def leave(peer: RawGrpcClient, stream: int, how: str) -> None:
    if how == "reset":
        peer.abandon(stream)
    else:
        peer.close()


def departures(caplog: pytest.LogCaptureFixture) -> int:
    return sum("the peer left" in r.getMessage() for r in caplog.records)


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.exc_info or "Traceback" in r.getMessage() or "ExecuteBatchError" in r.getMessage()
    ]


@pytest.mark.parametrize(("method", "moment", "how"), CASES)
def test_a_peer_leaving_during_a_write_is_one_debug_line_and_others_are_served(
    start_server: Callable[..., ServerThread],
    socket_path: Path,
    ca: TestCA,
    caplog: pytest.LogCaptureFixture,
    method: str,
    moment: str,
    how: str,
) -> None:
    server = start_server()
    server.call(lambda: server.store.put(DEFAULT, ca.credential()))
    api = API[method]
    rotate = moment == "rotation"
    with caplog.at_level(logging.DEBUG, logger="scm.sds"):
        peers = [open_peer(socket_path, method, 65535 if rotate else 0) for _ in range(PEERS)]
        try:
            if rotate:
                for peer, stream in peers:
                    peer.wait_messages(stream, 1)
                    peer.shut_window()
                server.call(lambda: server.store.put(DEFAULT, ca.credential()))
            pushes = 2 * PEERS if rotate else PEERS
            wait_for(
                lambda: server.metric("scm_sds_pushes_total", api=api) >= pushes,
                what="the server to write to every peer",
            )
            server.call(lambda: None)  # the loop has moved past the writes it started
            before_leaving = len(caplog.records)
            for peer, stream in peers:
                leave(peer, stream, how)
            # Bounded; stops early at a traceback, so the old code fails fast.
            deadline = time.monotonic() + 20
            while departures(caplog) < PEERS and not tracebacks(caplog):
                assert time.monotonic() < deadline, f"{departures(caplog)} departures logged"
                time.sleep(0.05)
        finally:
            for peer, _ in peers:
                peer.close()
    assert tracebacks(caplog) == []
    after = caplog.records[before_leaving:]
    assert [r.getMessage() for r in after if r.levelno >= logging.INFO] == []
    assert departures(caplog) == PEERS
    assert server.call(lambda: dict(server.server.service.streams)) == {}
    assert server.metric("scm_sds_streams", api=api) == 0
    assert fetch_secret(socket_path, DEFAULT).name == DEFAULT  # a new client is served


@pytest.mark.parametrize("how", ["reset", "close"])
def test_worker_processes_take_a_peer_leaving_during_a_write_the_same_way(
    start_server: Callable[..., ServerThread],
    socket_path: Path,
    ca: TestCA,
    capfd: pytest.CaptureFixture[str],
    how: str,
) -> None:
    """Two real worker processes behind the parent's gate; their stderr is this
    process's (inherited), so a traceback logged by either would be captured here."""
    sds = start_server(workers=2)
    sds.call(lambda: sds.store.put(DEFAULT, ca.credential()))
    peers = [open_peer(socket_path, "StreamSecrets", 0) for _ in range(PEERS)]
    try:
        wait_for(
            lambda: pool_metric(sds, "scm_sds_pushes_total", api="sotw") >= PEERS,
            what="the workers to write to every peer",
        )
        for peer, stream in peers:
            leave(peer, stream, how)
        wait_for(
            lambda: pool_metric(sds, "scm_sds_streams", api="sotw") == 0,
            what="every departed stream closed",
        )
    finally:
        for peer, _ in peers:
            peer.close()
    assert fetch_secret(socket_path, DEFAULT).name == DEFAULT
    stderr = capfd.readouterr().err
    assert "Traceback" not in stderr and "ExecuteBatchError" not in stderr, stderr[-3000:]
