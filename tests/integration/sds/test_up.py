"""``scm up`` as a newcomer runs it: a process, real Envoy, a signal to stop it all."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from tests.integration.sds.harness import short_socket_path

SCM = shutil.which("scm", path=str(Path(sys.executable).parent)) or "scm"


@pytest.fixture
def state_dir() -> Iterator[Path]:
    """A state directory short enough for the socket path inside it."""
    directory = short_socket_path("state")
    yield directory
    shutil.rmtree(directory.parent, ignore_errors=True)


def read_until(process: subprocess.Popen[str], marker: str) -> str:
    """stdout up to and including the line containing ``marker`` (fails if it exits)."""
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"scm up ended before {marker!r}:\n{''.join(seen)}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_scm_up_serves_tls_from_the_local_ca_until_sigint(state_dir: Path) -> None:
    process = subprocess.Popen(
        [SCM, "--state-dir", str(state_dir), "up", "--port", "0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        shown = read_until(process, "Running until SIGINT or SIGTERM")
    except BaseException:
        process.kill()
        process.communicate()
        raise
    port = int(re.search(r"https://localhost:(\d+)/", shown).group(1))  # type: ignore[union-attr]
    envoy_pid = int(re.search(r"Envoy +pid (\d+)", shown).group(1))  # type: ignore[union-attr]
    ca_pem = state_dir / "ca" / "ca.pem"
    assert f"curl --cacert {ca_pem} https://localhost:{port}/" in shown

    # what the printed curl line does: verify the chain (and host name) against the CA
    context = ssl.create_default_context(cafile=ca_pem)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        leaf = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True) or b"")
        tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        reply = b""
        while chunk := tls.recv(4096):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200") and b"certificate scm issued over SDS" in reply
    assert f"serial {leaf.serial_number:x}" in shown
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "spiffe://cluster.local/ns/default/sa/default" in sans.get_values_for_type(
        x509.UniformResourceIdentifier
    )

    process.send_signal(signal.SIGINT)
    rest, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "stopping Envoy and the SDS server" in rest
    assert "Traceback" not in stderr
    assert not alive(envoy_pid)
    assert not (state_dir / "up" / "sds.sock").exists()


def test_scm_up_hsm_mode_shows_the_secret_and_why_stock_envoy_rejects_it(
    state_dir: Path,
) -> None:
    result = subprocess.run(
        [SCM, "--state-dir", str(state_dir), "up", "--port", "0", "--key-mode", "hsm", "--check"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert '"providerName": "sgx"' in result.stdout
    assert 'privateKey"' not in result.stdout  # no key bytes, only the provider
    assert "Envoy rejected it (NACK): Failed to load private key provider: sgx" in result.stdout
    pins = [(state_dir / "softhsm" / f).read_text().strip() for f in ("user.pin", "so.pin")]
    for pin in pins:
        assert pin not in result.stdout and pin not in result.stderr
    assert '"usr_pin": "<redacted>"' in result.stdout
    assert not (state_dir / "up" / "sds.sock").exists()
