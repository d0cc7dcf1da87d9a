"""Real Envoy 1.40 against the real SDS server over a Unix socket."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from scm.sds import (
    DEFAULT,
    Credential,
    HsmKey,
    InlineKey,
    KeyProviderConfig,
    Pins,
    SecretRenderer,
)
from tests.certs import TestCA, key_pem
from tests.integration.sds.client import fetch_secret
from tests.integration.sds.harness import Envoy, ServerThread, handshake, wait_for


@pytest.mark.parametrize("api_type", ["GRPC", "DELTA_GRPC"])
def test_envoy_serves_sds_certificate_and_rotates_on_the_same_stream(
    api_type: str,
    ca: TestCA,
    client_files: tuple[Path, Path],
    socket_path: Path,
    start_server: Callable[..., ServerThread],
    tmp_path: Path,
) -> None:
    api = "sotw" if api_type == "GRPC" else "delta"
    first, second = ca.credential(), ca.credential()
    sds = start_server()
    sds.call(lambda: sds.store.put(DEFAULT, first))
    with Envoy(tmp_path, socket_path, api_type) as envoy:
        port = wait_for(envoy.listener_port, what="Envoy's TLS listener")
        served = wait_for(lambda: handshake(port, ca.pem(), *client_files), what="handshake")
        assert served.serial_number == first.leaf.serial_number
        streams = sds.metric("scm_sds_streams_opened_total", api=api)
        assert streams == 2  # one for default, one for ROOTCA

        sds.call(lambda: sds.store.put(DEFAULT, second))
        wait_for(
            lambda: (
                handshake(port, ca.pem(), *client_files).serial_number == second.leaf.serial_number
            ),
            what="Envoy to serve the rotated certificate",
        )
        wait_for(lambda: sds.metric("scm_sds_acks_total", api=api) >= 3, what="ACK of rotation")
        assert sds.metric("scm_sds_streams_opened_total", api=api) == streams
        assert envoy.stat("sds.default.update_success") == 2
        assert sds.metric("scm_sds_nacks_total", api=api) == 0


def test_broken_secret_is_nacked_and_the_last_good_version_stays(
    ca: TestCA,
    client_files: tuple[Path, Path],
    socket_path: Path,
    start_server: Callable[..., ServerThread],
    tmp_path: Path,
) -> None:
    good = ca.credential()
    other_certificate, _ = ca.issue("other")
    _, unrelated_key = ca.issue("unrelated")
    broken = Credential((other_certificate,), InlineKey(key_pem(unrelated_key)))
    sds = start_server()
    stored_good = sds.call(lambda: sds.store.put(DEFAULT, good))
    with Envoy(tmp_path, socket_path, "GRPC") as envoy:
        port = wait_for(envoy.listener_port, what="Envoy's TLS listener")
        wait_for(lambda: handshake(port, ca.pem(), *client_files), what="handshake")
        pushes = sds.metric("scm_sds_pushes_total", api="sotw")

        sds.call(lambda: sds.store.put(DEFAULT, broken))
        wait_for(lambda: sds.metric("scm_sds_nacks_total", api="sotw") == 1, what="NACK")
        assert envoy.stat("sds.default.update_rejected") == 1
        served = handshake(port, ca.pem(), *client_files)
        assert served.serial_number == good.leaf.serial_number
        info = sds.stream_for(DEFAULT)
        assert (info.acked[DEFAULT], info.nacks) == (stored_good.version, 1)
        # the rejected Secret was sent once, not again after the NACK
        assert sds.metric("scm_sds_pushes_total", api="sotw") == pushes + 1


def test_hsm_secret_carries_a_key_provider_that_stock_envoy_rejects_cleanly(
    ca: TestCA,
    client_files: tuple[Path, Path],
    socket_path: Path,
    start_server: Callable[..., ServerThread],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    pins = Pins(user="user-pin-7731", so="so-pin-5524")
    sds = start_server(SecretRenderer(KeyProviderConfig(pins=pins)))
    good = ca.credential()
    hsm_leaf, _ = ca.issue("hsm")
    hsm = Credential((hsm_leaf,), HsmKey("default-key", "scm", "ec-p256"))
    stored_good = sds.call(lambda: sds.store.put(DEFAULT, good))
    with Envoy(tmp_path, socket_path, "GRPC") as envoy:
        port = wait_for(envoy.listener_port, what="Envoy's TLS listener")
        wait_for(lambda: handshake(port, ca.pem(), *client_files), what="handshake")

        sds.call(lambda: sds.store.put(DEFAULT, hsm))
        secret = fetch_secret(socket_path, DEFAULT)
        tls = secret.tls_certificate
        assert tls.private_key_provider.provider_name == "sgx"
        assert not tls.HasField("private_key")
        assert b"PRIVATE KEY" not in secret.SerializeToString()

        wait_for(lambda: sds.metric("scm_sds_nacks_total", api="sotw") == 1, what="NACK")
        assert envoy.stat("sds.default.update_rejected") == 1
        info = sds.stream_for(DEFAULT)
        assert (info.acked[DEFAULT], info.nacks) == (stored_good.version, 1)
        served = handshake(port, ca.pem(), *client_files)
        assert served.serial_number == good.leaf.serial_number
    nack_logs = [r.getMessage() for r in caplog.records if "NACKed" in r.getMessage()]
    assert len(nack_logs) == 1 and "sgx" in nack_logs[0]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert pins.user not in logged and pins.so not in logged
