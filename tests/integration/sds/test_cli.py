"""``scm sds serve`` as an operator runs it: imported credentials, signals, bad input."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.service.secret.v3 import sds_pb2_grpc
from xds.type.v3 import typed_struct_pb2

from scm.sds import DEFAULT
from tests.certs import TestCA, cert_pem, key_pem
from tests.integration.sds.client import fetch_secret, request, secrets_of
from tests.integration.sds.harness import wait_for

SCM = shutil.which("scm", path=str(Path(sys.executable).parent)) or "scm"


def write_credential(ca: TestCA, directory: Path, name: str) -> tuple[Path, Path]:
    certificate, key = ca.issue(name)
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}-key.pem"
    cert_path.write_bytes(cert_pem(certificate) + ca.pem())
    key_path.write_bytes(key_pem(key))
    return cert_path, key_path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_imported_gateway_credential_until_sigterm(
    ca: TestCA, tmp_path: Path, socket_path: Path
) -> None:
    cert, key = write_credential(ca, tmp_path, "gateway")
    (tmp_path / "ca.pem").write_bytes(ca.pem())
    port = free_port()
    process = subprocess.Popen(
        [SCM, "--state-dir", str(tmp_path), "sds", "serve", "--no-issue",
         "--socket", str(socket_path), "--credential", f"ingress-cert={cert},{key}",
         "--trust-bundle", str(tmp_path / "ca.pem"), "--http", f"127.0.0.1:{port}"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: socket_path.is_socket(), what="the SDS socket")
        assert stat.S_IMODE(socket_path.stat().st_mode) == 0o600
        with grpc.insecure_channel(f"unix:{socket_path}") as channel:
            stub = sds_pb2_grpc.SecretDiscoveryServiceStub(channel)
            response = stub.FetchSecrets(request(["ingress-cert", "ROOTCA"]), timeout=5)
        secret, root = secrets_of(response)
        assert secret.tls_certificate.certificate_chain.inline_bytes == cert.read_bytes()
        assert root.validation_context.trusted_ca.inline_bytes == ca.pem()
        status = wait_for(
            lambda: json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5)),
            what="the status endpoint",
        )
        assert sorted(s["name"] for s in status["secrets"]) == ["ROOTCA", "ingress-cert"]
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    assert "serving ROOTCA, ingress-cert" in stderr
    assert not socket_path.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "nothing to serve"),
        (["--credential", "x"], "expected NAME=CERT.pem,KEY"),
        (["--credential", "x=/nonexistent.pem,/k.pem"], "/nonexistent.pem does not exist"),
        (["--credential", "x={cert},{other_key}"], "does not belong to the certificate"),
        (["--credential", "x={key},{key}"], "holds no PEM certificate"),
        (["--hsm-credential", "x={cert},label", "--pin-source", "envoy"], "puts the token PIN"),
        (["--trust-bundle", "{cert}", "--tcp", "127.0.0.1:1"], "--tcp needs --tls-cert"),
    ],
)
def test_bad_input_is_one_line_and_non_zero(
    ca: TestCA, tmp_path: Path, args: list[str], message: str
) -> None:
    cert, key = write_credential(ca, tmp_path, "one")
    _, other_key = write_credential(ca, tmp_path, "two")
    values = {"cert": cert, "key": key, "other_key": other_key}
    argv = [a.format(**values) for a in args]
    result = subprocess.run(
        [SCM, "--state-dir", str(tmp_path), "sds", "serve", "--no-issue", *argv],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert result.stderr.startswith("scm: error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_restarted_server_serves_the_same_identity_without_reissuing(
    tmp_path: Path, socket_path: Path
) -> None:
    state = tmp_path / "state"
    subprocess.run([SCM, "--state-dir", str(state), "ca", "init"], check=True, capture_output=True)
    port = free_port()

    def serve_once() -> tuple[Any, str, str]:
        """Start `scm sds serve` (hsm key mode), fetch default and the metrics, stop it."""
        process = subprocess.Popen(
            [SCM, "--state-dir", str(state), "sds", "serve", "--key-mode", "hsm",
             "--socket", str(socket_path),
             "--http", f"127.0.0.1:{port}", "--cert-ttl", "1h"],
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            wait_for(lambda: socket_path.is_socket(), what="the SDS socket")
            secret = fetch_secret(socket_path, DEFAULT)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
                metrics = reply.read().decode()
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=20)
        assert process.returncode == 0, stderr
        return secret, metrics, stderr

    first, first_metrics, _ = serve_once()
    second, second_metrics, stderr = serve_once()
    assert "scm_sds_certificates_issued_total 1.0" in first_metrics
    assert "scm_sds_certificates_issued_total 0.0" in second_metrics
    tls = second.tls_certificate
    assert (
        tls.certificate_chain.inline_bytes == first.tls_certificate.certificate_chain.inline_bytes
    )
    assert not tls.HasField("private_key")
    key_label = provider_config(second)["key_label"]
    assert key_label.startswith("sds-default-")
    assert key_label == provider_config(first)["key_label"]  # the same key in the token
    assert b"PRIVATE KEY" not in second.SerializeToString()
    pin = (state / "softhsm" / "user.pin").read_text().strip()
    assert pin not in stderr and pin not in second_metrics


def provider_config(secret: Any) -> dict[str, Any]:
    """The private key provider configuration a Secret carries, as a dict."""
    wrapper = typed_struct_pb2.TypedStruct()
    wrapper.ParseFromString(secret.tls_certificate.private_key_provider.typed_config.value)
    return dict(wrapper.value)


def test_issuing_without_a_ca_says_how_to_create_one(tmp_path: Path) -> None:
    result = subprocess.run(
        [SCM, "--state-dir", str(tmp_path), "sds", "serve", "--key-mode", "software"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert result.stderr.startswith("scm: error: ") and "run `scm ca init` first" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
