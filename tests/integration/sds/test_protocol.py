"""The three SDS RPCs over real gRPC on a Unix socket, driven by a scripted client."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from scm.sds import DEFAULT, ROOTCA, SdsServer, SecretStore
from scm.sds.render import SECRET_TYPE_URL
from tests.certs import TestCA
from tests.integration.sds.client import (
    delta_request,
    metric,
    read,
    request,
    secrets_of,
    serving,
    until,
)


def run(
    store: SecretStore, socket_path: Path, body: Callable[[SdsServer, Any], Awaitable[None]]
) -> None:
    async def main() -> None:
        async with serving(store, socket_path) as (server, stub):
            await body(server, stub)

    asyncio.run(main())


def test_fetch_returns_the_named_secrets(store: SecretStore, socket_path: Path) -> None:
    async def body(server: SdsServer, stub: Any) -> None:
        response = await stub.FetchSecrets(request([DEFAULT, ROOTCA]))
        secrets = secrets_of(response)
        assert [s.name for s in secrets] == [DEFAULT, ROOTCA]
        assert secrets[0].tls_certificate.private_key.inline_bytes.startswith(b"-----BEGIN")
        assert secrets[1].validation_context.trusted_ca.inline_bytes.startswith(b"-----BEGIN")
        assert response.type_url == SECRET_TYPE_URL

    run(store, socket_path, body)


@pytest.mark.parametrize(
    ("message", "code", "text", "reason"),
    [
        (request(["nope"]), grpc.StatusCode.NOT_FOUND, "unknown secret 'nope'", "unknown_name"),
        (request([]), grpc.StatusCode.INVALID_ARGUMENT, "must name", "no_names"),
        (request(["x" * 300]), grpc.StatusCode.INVALID_ARGUMENT, "longer than", "bad_name"),
    ],
)
def test_fetch_refuses_bad_requests_with_a_clear_status(
    store: SecretStore, socket_path: Path, message: Any, code: Any, text: str, reason: str
) -> None:
    async def body(server: SdsServer, stub: Any) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await stub.FetchSecrets(message)
        assert failure.value.code() == code
        assert text in failure.value.details()
        assert metric(server, "scm_sds_rejected_total", reason=reason) == 1
        assert len(secrets_of(await stub.FetchSecrets(request([DEFAULT])))) == 1

    run(store, socket_path, body)


def test_stream_ack_rotation_nack_and_stale_nonces(
    store: SecretStore, socket_path: Path, ca: TestCA
) -> None:
    async def body(server: SdsServer, stub: Any) -> None:
        call = stub.StreamSecrets()
        await call.write(request([DEFAULT]))
        first = await read(call)
        assert [s.name for s in secrets_of(first)] == [DEFAULT]
        assert first.nonce and first.version_info == store.get(DEFAULT).version  # type: ignore[union-attr]

        await call.write(request([DEFAULT], first.nonce, first.version_info))
        await until(lambda: metric(server, "scm_sds_acks_total", api="sotw") == 1, "ACK")

        store.put(DEFAULT, ca.credential())
        rotated = await read(call)
        assert rotated.nonce != first.nonce
        assert rotated.version_info == store.get(DEFAULT).version  # type: ignore[union-attr]

        # A stale nonce (the first response's) is ignored: no answer, no count.
        await call.write(request([DEFAULT], first.nonce, first.version_info, error="late"))
        # A NACK of the current response is counted and the Secret is not re-sent.
        await call.write(request([DEFAULT], rotated.nonce, first.version_info, error="bad key"))
        await until(lambda: metric(server, "scm_sds_nacks_total", api="sotw") == 1, "NACK")
        assert metric(server, "scm_sds_requests_total", api="sotw") == 4
        (info,) = server.service.streams.values()
        assert info.acked == {DEFAULT: first.version_info}

        # The next response on the stream is the next rotation, not a resend.
        store.put(DEFAULT, ca.credential())
        after_nack = await read(call)
        assert after_nack.version_info == store.get(DEFAULT).version  # type: ignore[union-attr]
        assert metric(server, "scm_sds_pushes_total", api="sotw") == 3
        call.cancel()

    run(store, socket_path, body)


def test_stream_subscription_changes_mid_stream(store: SecretStore, socket_path: Path) -> None:
    async def body(server: SdsServer, stub: Any) -> None:
        call = stub.StreamSecrets()
        await call.write(request([DEFAULT]))
        first = await read(call)
        await call.write(request([DEFAULT, ROOTCA], first.nonce, first.version_info))
        both = await read(call)
        assert sorted(s.name for s in secrets_of(both)) == sorted([DEFAULT, ROOTCA])
        await call.write(request([ROOTCA], both.nonce, both.version_info))
        only_root = await read(call)
        assert [s.name for s in secrets_of(only_root)] == [ROOTCA]
        assert store.watcher_count(DEFAULT) == 0 and store.watcher_count(ROOTCA) == 1
        call.cancel()

    run(store, socket_path, body)


@pytest.mark.parametrize(
    ("bad", "code", "text", "reason"),
    [
        (request([DEFAULT], nonce="'; DROP"), grpc.StatusCode.INVALID_ARGUMENT, "never sent",
         "unknown_nonce"),
        (request([DEFAULT], nonce="f" * 40), grpc.StatusCode.INVALID_ARGUMENT, "never sent",
         "unknown_nonce"),
        (request(["missing"]), grpc.StatusCode.NOT_FOUND, "unknown secret", "unknown_name"),
    ],
)  # fmt: skip
def test_bad_stream_requests_end_that_stream_only(
    store: SecretStore, socket_path: Path, bad: Any, code: Any, text: str, reason: str
) -> None:
    async def body(server: SdsServer, stub: Any) -> None:
        good = stub.StreamSecrets()
        await good.write(request([DEFAULT]))
        await read(good)
        broken = stub.StreamSecrets()
        await broken.write(bad)
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await read(broken)
        assert failure.value.code() == code
        assert text in failure.value.details()
        assert metric(server, "scm_sds_rejected_total", reason=reason) == 1
        store.put(DEFAULT, TestCA().credential())
        assert secrets_of(await read(good))[0].name == DEFAULT
        good.cancel()

    run(store, socket_path, body)


def test_wrong_type_url_is_refused(store: SecretStore, socket_path: Path) -> None:
    async def body(server: SdsServer, stub: Any) -> None:
        call = stub.StreamSecrets()
        wrong = request([DEFAULT])
        wrong.type_url = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
        await call.write(wrong)
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await read(call)
        assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "is not served here" in failure.value.details()

    run(store, socket_path, body)


def test_delta_subscribe_versions_unsubscribe_and_removal(
    store: SecretStore, socket_path: Path, ca: TestCA
) -> None:
    async def body(server: SdsServer, stub: Any) -> None:
        call = stub.DeltaSecrets()
        await call.write(delta_request(subscribe=[DEFAULT]))
        first = await read(call)
        assert [(r.name, r.version) for r in first.resources] == [
            (DEFAULT, store.get(DEFAULT).version)  # type: ignore[union-attr]
        ]
        # ACK and subscribe ROOTCA in one request: only ROOTCA is sent.
        await call.write(delta_request(subscribe=[ROOTCA], nonce=first.nonce))
        second = await read(call)
        assert [r.name for r in second.resources] == [ROOTCA]
        await until(lambda: metric(server, "scm_sds_acks_total", api="delta") == 1, "ACK")

        # Unsubscribed names are not pushed; a removed subscribed name is reported removed.
        await call.write(delta_request(unsubscribe=[DEFAULT], nonce=second.nonce))
        await until(lambda: store.watcher_count(DEFAULT) == 0, "unsubscribe")
        store.put(DEFAULT, ca.credential())
        store.remove(ROOTCA)
        removal = await read(call)
        assert list(removal.removed_resources) == [ROOTCA] and not removal.resources
        call.cancel()

    run(store, socket_path, body)


def test_delta_skips_versions_the_client_already_has(store: SecretStore, socket_path: Path) -> None:
    async def body(server: SdsServer, stub: Any) -> None:
        call = stub.DeltaSecrets()
        have = {DEFAULT: store.get(DEFAULT).version}  # type: ignore[union-attr]
        await call.write(delta_request(subscribe=[DEFAULT, ROOTCA], initial=have))
        response = await read(call)
        assert [r.name for r in response.resources] == [ROOTCA]
        call.cancel()

    run(store, socket_path, body)


def test_delta_nack_keeps_the_acked_version(
    store: SecretStore, socket_path: Path, ca: TestCA
) -> None:
    async def body(server: SdsServer, stub: Any) -> None:
        call = stub.DeltaSecrets()
        await call.write(delta_request(subscribe=[DEFAULT]))
        first = await read(call)
        await call.write(delta_request(nonce=first.nonce))
        store.put(DEFAULT, ca.credential())
        second = await read(call)
        await call.write(delta_request(nonce=second.nonce, error="rejected"))
        await until(lambda: metric(server, "scm_sds_nacks_total", api="delta") == 1, "NACK")
        (info,) = server.service.streams.values()
        assert info.acked == {DEFAULT: first.resources[0].version}
        store.put(DEFAULT, ca.credential())
        third = await read(call)
        assert third.resources[0].version == store.get(DEFAULT).version  # type: ignore[union-attr]
        call.cancel()

    run(store, socket_path, body)
