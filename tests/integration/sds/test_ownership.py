"""A serving process owns its socket; a failed start leaves nothing behind."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from scm.errors import UnavailableError
from scm.sds import ROOTCA, SdsServer, SecretRenderer, SecretStore, ServerOptions
from scm.sds.admission import AdmissionLimits
from scm.sds.listeners import TlsListener, UnixListener
from tests.certs import TestCA, cert_pem, key_pem
from tests.integration.sds.client import fetch_secret
from tests.integration.sds.harness import wait_for
from tests.integration.sds.test_cli import SCM


def serve(state_dir: Path, socket_path: Path, bundle: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [SCM, "--state-dir", str(state_dir), "sds", "serve", "--no-issue",
         "--socket", str(socket_path), "--trust-bundle", str(bundle)],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def finished(process: subprocess.Popen[str]) -> str:
    """The stderr of a process expected to exit by itself."""
    _, stderr = process.communicate(timeout=60)
    return stderr


def stop(process: subprocess.Popen[str]) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    return stderr


def test_a_second_server_on_a_socket_refuses_and_never_touches_the_first(
    ca: TestCA, tmp_path: Path, socket_path: Path
) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(ca.pem())
    first = serve(tmp_path / "one", socket_path, bundle)
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    try:
        wait_for(socket_path.is_socket, what="the first server's socket")
        wait_for(lambda: fetch_secret(socket_path, ROOTCA), what="the first server")
        inode = socket_path.stat().st_ino
        second = serve(tmp_path / "two", socket_path, bundle)
        stderr = finished(second)
        assert second.returncode == 75, stderr
        assert f"another server is listening on {socket_path} (pid {first.pid})" in stderr
        assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
        # the live socket is the first server's, untouched, and still served
        assert socket_path.stat().st_ino == inode
        assert fetch_secret(socket_path, ROOTCA).name == ROOTCA
    finally:
        stderr = stop(first)
    assert first.returncode == 0, stderr
    assert not socket_path.exists()


def test_a_stale_socket_is_replaced(ca: TestCA, tmp_path: Path, socket_path: Path) -> None:
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(socket_path))
    stale.close()  # the file stays, nobody listens: what a kill -9 leaves
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(ca.pem())
    process = serve(tmp_path, socket_path, bundle)
    try:
        wait_for(lambda: fetch_secret(socket_path, ROOTCA), what="the server")
    finally:
        stderr = stop(process)
    assert process.returncode == 0, stderr


def test_a_live_socket_of_another_program_is_never_unlinked(
    ca: TestCA, tmp_path: Path, socket_path: Path
) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as other:
        other.bind(str(socket_path))
        other.listen()
        bundle = tmp_path / "ca.pem"
        bundle.write_bytes(ca.pem())
        process = serve(tmp_path, socket_path, bundle)
        stderr = finished(process)
        assert process.returncode != 0
        assert f"another server is listening on {socket_path}" in stderr
        assert socket_path.is_socket()


def test_a_failed_start_undoes_everything_it_started(
    ca: TestCA, tmp_path: Path, socket_path: Path
) -> None:
    certificate, key = ca.issue("localhost")
    (tmp_path / "cert.pem").write_bytes(cert_pem(certificate))
    (tmp_path / "key.pem").write_bytes(key_pem(key))
    (tmp_path / "ca.pem").write_bytes(ca.pem())
    store = SecretStore()
    store.put(ROOTCA, ca.bundle())

    async def main() -> None:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            tls = TlsListener(
                "127.0.0.1", port, tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
            )
            options = ServerOptions(
                unix=(UnixListener(socket_path),),
                tls=(tls,),
                admission=AdmissionLimits(allowed_uids=frozenset({0, 1})),
            )
            before = set(Path(tempfile.gettempdir()).glob("scm-sds-*"))
            with pytest.raises(UnavailableError, match=r"cannot listen on 127\.0\.0\.1"):
                await SdsServer(store, SecretRenderer(), options).start()
            # no gate, no socket, no private directory left; the socket's lock is free
            assert not socket_path.exists()
            assert set(Path(tempfile.gettempdir()).glob("scm-sds-*")) <= before
        server = SdsServer(
            store, SecretRenderer(), ServerOptions(unix=(UnixListener(socket_path),))
        )
        await server.start()
        try:
            assert await asyncio.to_thread(fetch_secret, socket_path, ROOTCA)
        finally:
            await server.stop(0)

    asyncio.run(main())
