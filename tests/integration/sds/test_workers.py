"""``[sds] workers``: one server, several real worker processes, one store.

The parent runs in-process (a :class:`ServerThread`) where a test needs to change its
store; its workers are real ``python -m scm.sds.worker`` processes in every test, and
the clients are real Envoy 1.40 or grpc clients in processes or threads of their own.
"""

from __future__ import annotations

import asyncio
import datetime
import gc
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from envoy.service.secret.v3 import sds_pb2_grpc

from scm.errors import ScmError
from scm.keys import Pkcs11Keystore
from scm.pki import IssuedCertificate, LocalCA
from scm.sds import DEFAULT, ROOTCA, SdsServer, SecretRenderer, SecretStore, ServerOptions
from scm.sds.admission import AdmissionLimits
from scm.sds.leafkeys import SOFTWARE
from scm.sds.listeners import TlsListener, UnixListener
from scm.sds.proxy import EnvoyProcess, bootstrap, sds_tls_socket
from scm.sds.workers import WorkerPool
from tests.certs import TestCA, cert_pem, key_pem
from tests.integration.sds.client import request, secrets_of
from tests.integration.sds.harness import (
    ECHO,
    Envoy,
    ServerThread,
    handshake,
    stop_cleanly,
    wait_for,
)
from tests.integration.sds.issuing import make_issuer
from tests.integration.sds.test_cli import SCM, write_credential

ENVOY_LOG_LEVEL = os.environ.get("SCM_TEST_ENVOY_LOG_LEVEL", "info")


def pool_of(sds: ServerThread) -> WorkerPool:
    server = sds.server
    assert isinstance(server, WorkerPool)
    return server


def pool_metric(sds: ServerThread, name: str, **labels: str) -> float:
    """A metric summed over the parent and its workers, as /metrics shows it."""
    pool = pool_of(sds)
    sds.run(pool.refresh(with_streams=False))
    return pool.metrics_registry.get_sample_value(name, labels) or 0.0


def worker_metric(sds: ServerThread, index: int, name: str, **labels: str) -> float:
    """One worker's own figure for a metric (0.0 when it has none)."""
    pool = pool_of(sds)
    sds.run(pool.refresh(with_streams=False))
    for _, _, _, samples in pool.workers[index].metrics:
        for sample_name, sample_labels, value in samples:
            if sample_name == name and sample_labels == labels:
                return value
    return 0.0


class Streams:
    """``count`` SDS streams for ``name``, each on a connection of its own, every
    response ACKed (like Envoy); runs on a loop in a thread of its own."""

    def __init__(self, target: str, count: int, name: str = DEFAULT) -> None:
        self.thread = ServerThreadLoop()
        self.versions: list[list[str]] = [[] for _ in range(count)]
        self.serials: list[list[int]] = [[] for _ in range(count)]
        self.failures: list[str] = []
        self.thread.submit(self._open(target, count, name))

    async def _open(self, target: str, count: int, name: str) -> None:
        self.channels = [
            grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(count)
        ]
        self.tasks = [
            asyncio.create_task(self._hold(channel, index, name))
            for index, channel in enumerate(self.channels)
        ]

    async def _hold(self, channel: grpc.aio.Channel, index: int, name: str) -> None:
        try:
            call = sds_pb2_grpc.SecretDiscoveryServiceStub(channel).StreamSecrets()
            await call.write(request([name]))
            while (response := await call.read()) is not grpc.aio.EOF:
                (secret,) = secrets_of(response)
                chain = secret.tls_certificate.certificate_chain.inline_bytes
                self.serials[index].append(x509.load_pem_x509_certificate(chain).serial_number)
                self.versions[index].append(response.version_info)
                await call.write(request([name], response.nonce, response.version_info))
        except grpc.aio.AioRpcError as exc:
            self.failures.append(f"{exc.code().name}: {exc.details()}")

    def latest(self) -> set[str]:
        return {versions[-1] if versions else "" for versions in self.versions}

    def close(self) -> None:
        async def close() -> None:
            for channel in self.channels:
                await channel.close()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            # grpc.aio closes a closed channel's socket when the channel is collected
            self.channels.clear()
            self.tasks.clear()
            gc.collect()
            await asyncio.sleep(0.5)

        self.thread.submit(close())
        self.thread.close()


class ServerThreadLoop:
    """An event loop in a daemon thread (for clients next to an in-process server)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def submit(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(60)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@pytest.fixture
def tls_files(ca: TestCA, tmp_path: Path) -> dict[str, Path]:
    """The TCP listener's chain and key, and the client (Envoy) certificate for mTLS."""
    files: dict[str, Path] = {}
    for name in ("server", "envoy-client"):
        certificate, key = ca.issue("localhost" if name == "server" else name)
        files[name] = tmp_path / f"{name}.pem"
        files[name].write_bytes(cert_pem(certificate))
        files[f"{name}-key"] = tmp_path / f"{name}-key.pem"
        files[f"{name}-key"].write_bytes(key_pem(key))
    files["ca"] = tmp_path / "ca.pem"
    files["ca"].write_bytes(ca.pem())
    return files


def tls_listener(files: dict[str, Path]) -> TlsListener:
    return TlsListener("127.0.0.1", 0, files["server"], files["server-key"], files["ca"])


def over_tcp(envoy_config: dict[str, Any], port: int, files: dict[str, Path]) -> dict[str, Any]:
    """Envoy's SDS cluster pointed at ``127.0.0.1:port`` with mutual TLS."""
    cluster = envoy_config["static_resources"]["clusters"][0]
    address = {"socket_address": {"address": "127.0.0.1", "port_value": port}}
    cluster["load_assignment"]["endpoints"] = [
        {"lb_endpoints": [{"endpoint": {"address": address}}]}
    ]
    cluster["transport_socket"] = {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
            "UpstreamTlsContext",
            "sni": "localhost",
            "common_tls_context": {
                "alpn_protocols": ["h2"],
                "tls_certificates": [
                    {
                        "certificate_chain": {"filename": str(files["envoy-client"])},
                        "private_key": {"filename": str(files["envoy-client-key"])},
                    }
                ],
                "validation_context": {"trusted_ca": {"filename": str(files["ca"])}},
            },
        },
    }
    return envoy_config


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_envoy_receives_a_rotation_from_a_two_worker_server(
    transport: str,
    ca: TestCA,
    client_files: tuple[Path, Path],
    socket_path: Path,
    start_server: Callable[..., ServerThread],
    tls_files: dict[str, Path],
    tmp_path: Path,
) -> None:
    first, second = ca.credential(), ca.credential()
    tls = [tls_listener(tls_files)] if transport == "tcp" else []
    sds = start_server(workers=2, tls=tls)
    pool = pool_of(sds)
    assert len({w.pid for w in pool.workers}) == 2
    sds.call(lambda: sds.store.put(DEFAULT, first))
    envoy: EnvoyProcess
    if transport == "tcp":
        config = bootstrap(
            "sidecar~127.0.0.1~test.default~cluster.local",
            socket_path,
            0,
            ECHO,
            sds_tls_socket("GRPC", require_client_certificate=True),
        )
        config = over_tcp(config, pool.tls_ports[0], tls_files)
        envoy = EnvoyProcess(tmp_path / "envoy-tcp", config, ENVOY_LOG_LEVEL)
    else:
        envoy = Envoy(tmp_path, socket_path)
    try:
        port = wait_for(envoy.listener_port, what="Envoy's TLS listener")
        served = wait_for(lambda: handshake(port, ca.pem(), *client_files), what="handshake")
        assert served.serial_number == first.leaf.serial_number

        sds.call(lambda: sds.store.put(DEFAULT, second))
        wait_for(
            lambda: (
                handshake(port, ca.pem(), *client_files).serial_number == second.leaf.serial_number
            ),
            what="Envoy to serve the rotated certificate",
        )
        wait_for(
            lambda: pool_metric(sds, "scm_sds_acks_total", api="sotw") >= 3,
            what="the rotation's ACK, counted over the workers",
        )
        assert pool_metric(sds, "scm_sds_nacks_total", api="sotw") == 0
        assert pool_metric(sds, "scm_sds_streams_opened_total", api="sotw") == 2
    finally:
        envoy.stop()


def test_a_rotation_reaches_streams_on_every_worker(
    ca: TestCA, socket_path: Path, start_server: Callable[..., ServerThread]
) -> None:
    sds = start_server(workers=2)
    sds.call(lambda: sds.store.put(DEFAULT, ca.credential()))
    streams = Streams(f"unix:{socket_path}", 8)
    try:
        wait_for(lambda: all(streams.versions), what="every stream's first response")
        pool = pool_of(sds)
        sds.run(pool.refresh(with_streams=True))
        assert {entry["worker"] for entry in pool.stream_entries()} == {0, 1}
        rotated = sds.call(lambda: sds.store.put(DEFAULT, ca.credential()))
        wait_for(lambda: streams.latest() == {rotated.version}, what="the rotation on all")
        assert not streams.failures
    finally:
        streams.close()


def test_connection_limits_hold_across_workers(
    ca: TestCA, socket_path: Path, start_server: Callable[..., ServerThread]
) -> None:
    limits = AdmissionLimits(max_connections_per_uid=3)
    sds = start_server(workers=2, admission=limits)
    sds.call(lambda: sds.store.put(DEFAULT, ca.credential()))
    streams = Streams(f"unix:{socket_path}", 3)
    try:
        wait_for(lambda: all(streams.versions), what="three streams served")
        with grpc.insecure_channel(f"unix:{socket_path}") as channel:
            stub = sds_pb2_grpc.SecretDiscoveryServiceStub(channel)
            with pytest.raises(grpc.RpcError) as refused:
                stub.FetchSecrets(request([ROOTCA]), timeout=10)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert (
            pool_metric(sds, "scm_sds_rejected_total", reason="too_many_connections_for_uid") == 1
        )
    finally:
        streams.close()
    # closed connections are given back, whichever worker held them

    wait_for(lambda: pool_of(sds).gates[0].counts.total == 0, what="the closes to be counted")


def test_a_killed_worker_is_restarted_and_its_connections_released(
    ca: TestCA, socket_path: Path, start_server: Callable[..., ServerThread]
) -> None:
    before = private_dirs()
    sds = start_server(workers=2)
    sds.call(lambda: sds.store.put(DEFAULT, ca.credential()))
    pool = pool_of(sds)
    streams = Streams(f"unix:{socket_path}", 4)
    try:
        wait_for(lambda: all(streams.versions), what="four streams served")
        victim = pool.workers[0]
        old_pid, old_dir = victim.pid, victim.private_dir
        assert old_dir is not None and old_dir in private_dirs()
        assert victim.open_connections > 0
        os.kill(old_pid, signal.SIGKILL)
        wait_for(lambda: victim.ready and victim.pid != old_pid, what="the worker's restart")
        assert old_dir not in private_dirs()  # the dead worker's private socket is removed
        assert len(private_dirs() - before) == 2
        assert pool_metric(sds, "scm_sds_worker_restarts_total") == 1
        wait_for(lambda: len(streams.failures) > 0, what="the killed worker's streams to end")
        # what the dead worker held is no longer counted; new connections are served
        survivors = pool.workers[1].open_connections
        assert pool.gates[0].counts.total == survivors + victim.open_connections
        with grpc.insecure_channel(f"unix:{socket_path}") as channel:
            stub = sds_pb2_grpc.SecretDiscoveryServiceStub(channel)
            assert secrets_of(stub.FetchSecrets(request([DEFAULT]), timeout=20))
    finally:
        streams.close()
    assert not process_exists(old_pid)


class CountingCA:
    """The local CA, counting signatures and slow enough that requests overlap."""

    def __init__(self, ca: LocalCA) -> None:
        self.ca = ca
        self.signed = 0

    async def sign(
        self, csr: x509.CertificateSigningRequest, ttl: datetime.timedelta
    ) -> IssuedCertificate:
        self.signed += 1
        await asyncio.sleep(0.5)
        return await self.ca.sign(csr, ttl)

    def trust_bundle(self) -> list[x509.Certificate]:
        return self.ca.trust_bundle()


def test_one_identity_asked_through_two_workers_at_once_is_issued_once(
    tmp_path: Path, token_keystore: Pkcs11Keystore, local_ca: LocalCA, socket_path: Path
) -> None:
    counting = CountingCA(local_ca)
    issuer = make_issuer(tmp_path, token_keystore, counting, SOFTWARE)  # type: ignore[arg-type]
    options = ServerOptions(unix=(UnixListener(socket_path),), workers=2)
    sds = ServerThread(SecretStore(issuer), SecretRenderer(), options, issuer)
    streams: Streams | None = None
    try:
        streams = Streams(f"unix:{socket_path}", 8)
        wait_for(lambda: all(streams.serials), timeout=60, what="every stream's certificate")
        assert counting.signed == 1
        assert len({serials[0] for serials in streams.serials}) == 1
        for index in (0, 1):  # the requests really went through both workers
            assert worker_metric(sds, index, "scm_sds_requests_total", api="sotw") > 0
    finally:
        if streams is not None:
            streams.close()
        sds.close()


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return "gone"


def children_of(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in children.read_text().split()]


def private_dirs() -> set[Path]:
    return set(Path("/tmp").glob("scm-sds-worker*"))


@pytest.fixture
def served_files(ca: TestCA, tmp_path: Path) -> Iterator[list[str]]:
    cert, key = write_credential(ca, tmp_path, "gateway")
    (tmp_path / "ca.pem").write_bytes(ca.pem())
    yield [
        "--no-issue",
        "--credential", f"ingress-cert={cert},{key}",
        "--trust-bundle", str(tmp_path / "ca.pem"),
    ]  # fmt: skip


@pytest.mark.parametrize(("stop", "workers"), [("SIGTERM", 1), ("SIGTERM", 2), ("SIGKILL", 2)])
def test_stopping_with_open_streams_leaves_no_worker_socket_directory_or_traceback(
    stop: str, workers: int, served_files: list[str], socket_path: Path, tmp_path: Path
) -> None:
    before = private_dirs()
    process = subprocess.Popen(
        [SCM, "--state-dir", str(tmp_path), "sds", "serve", "--socket", str(socket_path),
         "--workers", str(workers), *served_files],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    streams: Streams | None = None
    try:
        wait_for(lambda: socket_path.is_socket(), timeout=60, what="the SDS socket")
        if workers > 1:
            wait_for(lambda: len(children_of(process.pid)) == workers, what="the workers")
        pids = children_of(process.pid)
        streams = Streams(f"unix:{socket_path}", 6, "ingress-cert")
        wait_for(lambda: all(streams.versions), what="open streams on every worker")
        if stop == "SIGTERM":  # streams end normally: no cancelled handler, no traceback
            stop_cleanly(process, socket_path)
        else:
            process.kill()
            process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        if streams is not None:
            streams.close()
    # the workers end with their parent (by its order, or because its channel closed)
    wait_for(lambda: not any(process_exists(pid) for pid in pids), what="the workers to end")
    wait_for(lambda: private_dirs() <= before, what="the workers' private sockets removed")


def test_only_the_pools_own_workers_share_its_tcp_port(
    socket_path: Path,
    start_server: Callable[..., ServerThread],
    tls_files: dict[str, Path],
    tmp_path: Path,
) -> None:
    sds = start_server(workers=2, tls=[tls_listener(tls_files)])
    port = pool_of(sds).tls_ports[0]
    taken = replace(tls_listener(tls_files), port=port)
    other_socket = socket_path.with_name("other.sock")
    for workers in (1, 2):  # a plain server cannot bind; another pool finds the port locked
        options = ServerOptions(unix=(UnixListener(other_socket),), tls=[taken], workers=workers)
        server = (WorkerPool if workers > 1 else SdsServer)(
            SecretStore(), SecretRenderer(), options
        )
        with pytest.raises(ScmError, match=f"127.0.0.1:{port}"):
            sds.run(server.start(), timeout=90)
        assert not other_socket.exists()


@pytest.mark.parametrize(
    ("args", "message"), [(["--workers", "0"], "--workers"), ([], "[sds] workers must be")]
)
def test_a_bad_worker_count_is_one_line_and_starts_nothing(
    args: list[str], message: str, served_files: list[str], socket_path: Path, tmp_path: Path
) -> None:
    (tmp_path / "scm.toml").write_text("[sds]\nworkers = 0\n")
    result = subprocess.run(
        [SCM, "--config", str(tmp_path / "scm.toml"), "--state-dir", str(tmp_path), "sds",
         "serve", "--socket", str(socket_path), *args, *served_files],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not socket_path.exists()


def test_a_worker_that_cannot_start_stops_the_server_with_one_line(
    served_files: list[str], socket_path: Path, tmp_path: Path
) -> None:
    before = private_dirs()
    missing = tmp_path / "missing.pem"
    result = subprocess.run(
        [SCM, "--state-dir", str(tmp_path), "sds", "serve", "--socket", str(socket_path),
         "--workers", "2", "--tcp", "127.0.0.1:0", "--tls-cert", str(missing),
         "--tls-key", str(missing), "--tls-client-ca", str(missing), *served_files],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "did not start: cannot read TLS listener file" in result.stderr
    assert "Traceback" not in result.stderr
    assert not socket_path.exists()
    assert private_dirs() <= before
