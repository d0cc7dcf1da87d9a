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
    ca_pem = state_dir / "up" / "ca" / "ca.pem"
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
    pins = [(state_dir / "up" / "softhsm" / f).read_text().strip() for f in ("user.pin", "so.pin")]
    for pin in pins:
        assert pin not in result.stdout and pin not in result.stderr
    assert '"usr_pin": "<redacted>"' in result.stdout
    assert not (state_dir / "up" / "sds.sock").exists()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_up(state_dir: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [SCM, "--state-dir", str(state_dir), "up", *args],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_a_second_scm_up_on_the_same_port_refuses_and_the_first_keeps_serving(
    state_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    first = start_up(state_dir, "--port", str(port))
    try:
        shown = read_until(first, "Running until SIGINT or SIGTERM")
        # another state directory, so only the port is shared
        second = subprocess.run(
            [SCM, "--state-dir", str(tmp_path / "other"), "up", "--port", str(port), "--check"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=90,
        )  # fmt: skip
        assert second.returncode == 75, second.stderr
        assert f"another server is listening on 127.0.0.1:{port} (pid {first.pid})" in second.stderr
        assert "Traceback" not in second.stderr
        assert not (tmp_path / "other" / "up" / "sds.sock").exists()
        # every connection still reaches the first one's Envoy, with its certificate
        ca_pem = state_dir / "up" / "ca" / "ca.pem"
        context = ssl.create_default_context(cafile=ca_pem)
        serial = re.search(r"serial ([0-9a-f]+)", shown).group(1)  # type: ignore[union-attr]
        for _ in range(10):
            with (
                socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
                context.wrap_socket(raw, server_hostname="localhost") as tls,
            ):
                leaf = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True) or b"")
            assert f"{leaf.serial_number:x}" == serial
    finally:
        first.send_signal(signal.SIGTERM)
        _, stderr = first.communicate(timeout=30)
    assert first.returncode == 0, stderr


def digest_tree(root: Path, skip: str) -> dict[str, bytes]:
    """Every file under ``root`` (but ``skip``) with its content."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.relative_to(root).parts[0] != skip
    }


def test_scm_up_keeps_its_own_token_ca_and_records_apart_from_production_state(
    state_dir: Path,
) -> None:
    # a production state directory: its token, its CA and a key in the token
    scm = [SCM, "--state-dir", str(state_dir)]
    subprocess.run([*scm, "ca", "init"], check=True, capture_output=True, timeout=60)
    subprocess.run(
        [*scm, "keys", "generate", "gateway"], check=True, capture_output=True, timeout=60
    )
    before = digest_tree(state_dir, skip="up")

    for mode in ("software", "hsm"):
        result = subprocess.run(
            [*scm, "up", "--port", "0", "--key-mode", mode, "--check"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=90,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        # nothing to try once --check has stopped the servers it would name
        assert "Try it" not in result.stdout and "--check: everything answered" in result.stdout

    assert digest_tree(state_dir, skip="up") == before  # production state untouched
    up = state_dir / "up"
    assert (up / "softhsm").is_dir() and (up / "ca" / "ca.pem").is_file()
    assert (up / "ca" / "ca.pem").read_bytes() != (state_dir / "ca" / "ca.pem").read_bytes()
    assert "local CA      " in result.stdout and str(up / "ca" / "ca.pem") in result.stdout
