"""Faults the SDS state meets: a read-only records directory during renewal, the CA
re-initialised, the service account changed. Real token, real local CA, real Envoy."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import errno
import json
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from scm.keys import Pkcs11Keystore, SoftwareKeystore
from scm.pki import LocalCA, WorkloadIdentity
from scm.sds import DEFAULT, SecretRenderer, SecretStore, ServerOptions
from scm.sds.credentials import Credential
from scm.sds.issuer import LABEL_PREFIX, CertificateIssuer, IssuancePolicy
from scm.sds.leafkeys import HSM, SOFTWARE, LeafKeys
from scm.sds.listeners import UnixListener
from scm.sds.monitor import readiness_problem
from scm.sds.records import CredentialRecords
from scm.sds.renewal import Backoff
from tests.certs import cert_pem
from tests.integration.sds.client import fetch_secret
from tests.integration.sds.harness import Envoy, ServerThread, handshake, stop_cleanly, wait_for
from tests.integration.sds.issuing import WORKLOAD, client_files, make_issuer
from tests.integration.sds.test_cli import SCM, free_port

FAST_RETRY = Backoff(initial=0.2, maximum=0.5)


def issued_labels(keystore: Pkcs11Keystore) -> set[str]:
    return {info.label for info in keystore.list() if info.label.startswith(LABEL_PREFIX)}


@contextlib.contextmanager
def read_only_mount(directory: Path) -> Iterator[bool]:
    """``directory`` as a read-only bind mount of itself while inside; False where this
    process may not mount (nothing changed then)."""
    directory.mkdir(parents=True, exist_ok=True)
    bind = subprocess.run(["mount", "--bind", str(directory), str(directory)], capture_output=True)
    if bind.returncode != 0:
        yield False
        return
    try:
        subprocess.run(
            ["mount", "-o", "remount,bind,ro", str(directory)], check=True, capture_output=True
        )
        yield True
    finally:
        subprocess.run(["umount", str(directory)], check=True, capture_output=True)


@contextlib.contextmanager
def read_only(directory: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Make ``directory`` read-only for real (a read-only bind mount) where this process
    may mount; else inject EROFS at the records' write seam. Yields which one ran."""

    def refuse(path: Path, *_: object, **__: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    with read_only_mount(directory) as mounted, monkeypatch.context() as patch:
        if not mounted:
            patch.setattr("scm.sds.records.write_atomic", refuse)
        yield "bind-mount" if mounted else "injected"


def test_renewal_survives_a_read_only_records_directory_and_resumes_after_it(
    tmp_path: Path,
    token_keystore: Pkcs11Keystore,
    local_ca: LocalCA,
    start_issuing: Callable[..., ServerThread],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    others = issued_labels(token_keystore)  # keys of other tests in the shared token
    # 4 s certificates renewed when 80% is left: a renewal every 0.8 s
    ttl = datetime.timedelta(seconds=4)
    issuer = make_issuer(tmp_path, token_keystore, local_ca, HSM, ttl, grace_ratio=0.8)
    sds = start_issuing(issuer, backoff=FAST_RETRY)
    first = sds.run(sds.store.obtain(DEFAULT))
    assert readiness_problem(sds.server, issuer.health) is None

    with read_only(tmp_path / "sds", monkeypatch) as fault:
        if fault == "bind-mount":  # the kernel itself refuses writes now
            with pytest.raises(OSError) as refused:
                (tmp_path / "sds" / "probe").write_text("x")
            assert refused.value.errno == errno.EROFS
        wait_for(lambda: issuer.health.consecutive_failures >= 3, what="failed renewals")
        status = issuer.health.status()
        assert "read-only" in status["last_error"], (fault, status)
        assert status["next_retry"] is not None and status["ca_reachable"] is False
        assert sds.metric("scm_sds_issuance_failures_total") >= 3
        # the served certificate runs out while the fault lasts: not ready, and saying why
        problem = wait_for(
            lambda: sds.call(lambda: readiness_problem(sds.server, issuer.health)),
            timeout=30,
            what="the served certificate to expire",
        )
        assert "expired" in problem
        stored = sds.store.get(DEFAULT)
        assert stored is not None and stored.version == first.version  # still the last one
        record = issuer.records.load(DEFAULT)
        assert record is not None
        # no key made for a failed attempt is left behind
        assert issued_labels(token_keystore) - others <= record.labels()

    renewed = wait_for(
        lambda: (s := sds.store.get(DEFAULT)) is not None and s.version != first.version and s,
        timeout=30,
        what="renewal to resume",
    )
    assert isinstance(renewed.value, Credential)
    wait_for(
        lambda: sds.call(lambda: readiness_problem(sds.server, issuer.health)) is None,
        what="ready again",
    )
    assert issuer.health.status()["consecutive_failures"] == 0
    record = issuer.records.load(DEFAULT)
    assert record is not None and record.key_label == issuer.current.key_label  # type: ignore[union-attr]
    assert issued_labels(token_keystore) - others <= record.labels()


def spiffe_id(certificate: x509.Certificate) -> list[str]:
    sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return sans.get_values_for_type(x509.UniformResourceIdentifier)


def serve_and_handshake(
    tmp_path: Path, socket_path: Path, issuer: CertificateIssuer, ca: LocalCA
) -> x509.Certificate:
    """What Envoy serves with ``issuer`` behind it (a fresh server and Envoy)."""
    options = ServerOptions(unix=(UnixListener(socket_path),))
    sds = ServerThread(SecretStore(issuer), SecretRenderer(), options, issuer)
    try:
        with Envoy(tmp_path, socket_path, "GRPC") as envoy:
            port = wait_for(envoy.listener_port, what="Envoy's TLS listener")
            client = client_files(ca, tmp_path)
            return wait_for(
                lambda: handshake(port, cert_pem(ca.certificate), *client), what="handshake"
            )
    finally:
        sds.close()


def test_a_restart_after_the_ca_was_reinitialised_or_the_account_changed_serves_the_new_identity(
    tmp_path: Path,
    token_keystore: Pkcs11Keystore,
    local_ca: LocalCA,
    label: str,
    socket_path: Path,
) -> None:
    first = serve_and_handshake(
        tmp_path, socket_path, make_issuer(tmp_path, token_keystore, local_ca, SOFTWARE), local_ca
    )
    assert spiffe_id(first) == [WORKLOAD.spiffe_id]

    # restarted with another service account: the recorded certificate is not served
    checkout = WorkloadIdentity("cluster.local", "shop", "checkout", ("localhost",))
    issuer = make_issuer(tmp_path, token_keystore, local_ca, SOFTWARE)
    issuer.identity = checkout
    moved = serve_and_handshake(tmp_path, socket_path, issuer, local_ca)
    assert spiffe_id(moved) == [checkout.spiffe_id]

    # the CA re-initialised (a new key and certificate): the old chain no longer verifies
    shutil.rmtree(LocalCA.directory(tmp_path))
    new_ca = LocalCA.init(tmp_path, token_keystore, "cluster.local", key_label=f"ca2-{label}")
    new_ca.policy = dataclasses.replace(new_ca.policy, dns_suffixes=("localhost",))
    issuer = make_issuer(tmp_path, token_keystore, new_ca, SOFTWARE)
    issuer.identity = checkout
    served = serve_and_handshake(tmp_path, socket_path, issuer, new_ca)  # verified by new CA
    assert served.issuer == new_ca.certificate.subject and served != moved
    assert spiffe_id(served) == [checkout.spiffe_id]


def test_switching_key_modes_retires_the_token_key_instead_of_leaking_it(
    tmp_path: Path, token_keystore: Pkcs11Keystore, local_ca: LocalCA
) -> None:
    import asyncio

    others = issued_labels(token_keystore)
    ttl = datetime.timedelta(seconds=30)
    hsm = make_issuer(tmp_path, token_keystore, local_ca, HSM, ttl)
    hsm_record = asyncio.run(hsm.obtain())
    assert issued_labels(token_keystore) - others == {hsm_record.key_label}

    class Later:
        """The wall clock an hour on: the hsm certificate has expired."""

        def now(self) -> datetime.datetime:
            return datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)

        async def sleep(self, seconds: float) -> None:
            await asyncio.sleep(0)

    keys = LeafKeys(SoftwareKeystore(), SOFTWARE, "scm", token=token_keystore)
    policy = IssuancePolicy(ttl=datetime.timedelta(hours=2), jitter_ratio=0.0)
    records = CredentialRecords(tmp_path / "sds")
    software = CertificateIssuer(local_ca, keys, WORKLOAD, records, policy, clock=Later())

    async def switch() -> None:
        record = await software.obtain()
        assert record.key_mode == SOFTWARE
        assert [r.key_label for r in record.retired] == [hsm_record.key_label]
        await software.retire_expired()

    asyncio.run(switch())
    assert issued_labels(token_keystore) - others == set()  # the token key is gone
    saved = records.load(DEFAULT)
    assert saved is not None and saved.retired == ()


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()


@contextlib.contextmanager
def unwritable(directory: Path) -> Iterator[str]:
    """``directory`` unwritable for another process: a read-only bind mount where this
    process may mount, else mode 0500 (which binds only a process that is not root)."""
    with read_only_mount(directory) as mounted:
        if mounted:
            yield "bind-mount"
            return
        directory.chmod(0o500)
        try:
            yield "chmod 0500"
        finally:
            directory.chmod(0o700)


def test_scm_sds_serve_under_a_read_only_sds_directory_reports_it_and_stops_cleanly(
    tmp_path: Path, socket_path: Path
) -> None:
    state = tmp_path / "state"
    subprocess.run([SCM, "--state-dir", str(state), "ca", "init"], check=True, capture_output=True)
    port = free_port()
    process = subprocess.Popen(
        [SCM, "--state-dir", str(state), "sds", "serve", "--socket", str(socket_path),
         "--http", f"127.0.0.1:{port}", "--cert-ttl", "4s"],
        stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: fetch_secret(socket_path, DEFAULT), what="default")
        with unwritable(state / "sds") as fault:
            probe = state / "sds" / "probe"
            with pytest.raises(OSError) as refused:
                probe.write_text("x")
            assert refused.value.errno in (errno.EROFS, errno.EACCES), fault

            def failing() -> dict[str, Any] | None:
                status = json.loads(http_get(port, "/status")[1])["issuance"]
                return status if status["failures_total"] >= 2 else None

            status = wait_for(failing, timeout=60, what="failed renewals in /status")
            assert "read-only" in status["last_error"] and status["next_retry"]
            _, body = wait_for(
                lambda: (r := http_get(port, "/readyz"))[0] == 503 and r,
                timeout=60,
                what="/readyz to fail",
            )
            assert "expired" in body
            assert "scm_sds_issuance_failures_total" in http_get(port, "/metrics")[1]
        wait_for(lambda: http_get(port, "/readyz")[0] == 200, timeout=60, what="ready again")
    finally:
        stop_cleanly(process, socket_path)
