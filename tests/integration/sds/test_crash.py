"""kill -9 of `scm sds serve` at every step of a first issuance and of a renewal: the
next start serves a certificate that verifies against the CA, and once it has stopped
the token holds no key that no record accounts for."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store

from scm.crashpoints import PAUSE_AT_ENV as PAUSE_ENV
from scm.sds import DEFAULT
from scm.sds.records import CredentialRecords
from tests.integration.sds.client import fetch_secret
from tests.integration.sds.harness import stop_cleanly, wait_for
from tests.integration.sds.test_cli import SCM


def serve(state: Path, socket_path: Path, pause_at: str | None = None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != PAUSE_ENV}
    if pause_at:
        env[PAUSE_ENV] = pause_at
    return subprocess.Popen(
        [SCM, "--state-dir", str(state), "sds", "serve", "--socket", str(socket_path),
         "--cert-ttl", "6s"],
        stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def wait_until_paused(process: subprocess.Popen[str], point: str) -> None:
    assert process.stderr is not None
    seen = []
    for line in process.stderr:
        seen.append(line)
        if f"paused at {point.partition('#')[0]}" in line:
            return
    raise AssertionError(f"scm sds serve ended before pausing at {point}:\n{''.join(seen)}")


def token_labels(state: Path) -> set[str]:
    listed = subprocess.run(
        [SCM, "--state-dir", str(state), "keys", "list", "--format", "json"],
        check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return {entry["label"] for entry in json.loads(listed.stdout)}


def verifies(secret: Any, ca_pem: Path) -> x509.Certificate:
    chain = x509.load_pem_x509_certificates(secret.tls_certificate.certificate_chain.inline_bytes)
    roots = x509.load_pem_x509_certificates(ca_pem.read_bytes())
    verifier = PolicyBuilder().store(Store(roots)).build_client_verifier()
    verifier.verify(chain[0], chain[1:])
    return chain[0]


@pytest.mark.parametrize(
    "point",
    [
        "sds.issue.key-made",  # first issuance: key made, not signed
        "sds.issue.signed",  # signed, not recorded
        "sds.issue.recorded",  # recorded, not served
        "sds.issue.key-made#2",  # the first renewal, at each step
        "sds.issue.signed#2",
    ],
)
def test_kill_9_during_issuance_or_renewal_then_the_next_start_serves(
    tmp_path: Path, socket_path: Path, point: str
) -> None:
    state = tmp_path / "state"
    subprocess.run([SCM, "--state-dir", str(state), "ca", "init"], check=True, capture_output=True)
    ca_labels = token_labels(state)

    crashing = serve(state, socket_path, point)
    paused = threading.Event()
    try:
        wait_for(socket_path.is_socket, what="the SDS socket")
        # the first request starts issuance; a renewal follows 3 s later (6 s lifetime)
        first = threading.Thread(target=_ask_until, args=(socket_path, paused), daemon=True)
        first.start()
        wait_until_paused(crashing, point)
    finally:
        paused.set()
        crashing.send_signal(signal.SIGKILL)
        crashing.wait(30)

    restarted = serve(state, socket_path)
    try:
        # (the killed server's socket file may still be there: retry until one answers)
        secret = wait_for(lambda: fetch_secret(socket_path, DEFAULT), what="default")
        leaf = verifies(secret, state / "ca" / "ca.pem")
        assert leaf.not_valid_after_utc > leaf.not_valid_before_utc
    finally:
        stop_cleanly(restarted, socket_path)

    record = CredentialRecords(state / "sds").load(DEFAULT)
    assert record is not None
    # every key in the token is the CA's or accounted for by the record: no orphans
    assert token_labels(state) - ca_labels <= record.labels()


def _ask_until(socket_path: Path, stop: threading.Event) -> None:
    """Request ``default`` until one is answered or ``stop`` (a request can come too
    early for the server, or time out on a loaded machine: ask again)."""
    while not stop.is_set():
        try:
            fetch_secret(socket_path, DEFAULT)
            return
        except Exception:  # not ready yet, or paused: no answer is expected then
            stop.wait(0.2)
