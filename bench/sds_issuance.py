"""Cold issuance: from the first request for ``default`` to the response.

Each round starts a fresh SDS server whose issuer has nothing recorded, so the request
makes it generate a P-256 key in the embedded SoftHSM2 token, build and sign the CSR in
the token, have the local CA (its key in the same token) sign the certificate, record it
and answer. Only the request is timed. Prints p50 and p99; figures only.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from envoy.service.secret.v3 import sds_pb2_grpc
from tests.integration.sds.client import request

from scm.config import load_settings
from scm.keys import open_keystore
from scm.pki import LocalCA
from scm.sds import DEFAULT, SdsServer, SecretRenderer, SecretStore, ServerOptions
from scm.sds.issuer import CertificateIssuer
from scm.sds.issuing import build_issuer, embedded_token_pins
from scm.sds.keyprovider import KeyProviderConfig
from scm.sds.leafkeys import HSM
from scm.sds.listeners import UnixListener

ROUNDS = int(os.environ.get("SCM_BENCH_ISSUANCE_ROUNDS", "200"))


async def one_round(
    settings_dir: Path, build: Callable[[], CertificateIssuer], renderer: SecretRenderer
) -> float:
    issuer = build()
    socket_path = settings_dir / "sds.sock"
    server = SdsServer(
        SecretStore(issuer), renderer, ServerOptions(unix=(UnixListener(socket_path),))
    )
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"unix:{socket_path}") as channel:
            stub = sds_pb2_grpc.SecretDiscoveryServiceStub(channel)
            await channel.channel_ready()
            started = time.perf_counter()
            await stub.FetchSecrets(request([DEFAULT]), timeout=10)
            elapsed = time.perf_counter() - started
    finally:
        await server.stop(0)
    # not timed: forget this round's key and record so the next round is cold again
    assert issuer.current is not None
    issuer.keys.keystore.delete(issuer.current.key_label)
    issuer.records.path(DEFAULT).unlink()
    return elapsed


async def run(state_dir: Path) -> list[float]:
    settings = load_settings(environ={"SCM_STATE_DIR": str(state_dir)})
    keystore = open_keystore(settings)
    ca = LocalCA.init(state_dir, keystore, "cluster.local")
    renderer = SecretRenderer(KeyProviderConfig(pins=embedded_token_pins(settings)))
    try:

        def build() -> CertificateIssuer:
            return build_issuer(settings, keystore, ca, HSM, "24h")

        await one_round(state_dir, build, renderer)  # warm-up: imports, first session
        return [await one_round(state_dir, build, renderer) for _ in range(ROUNDS)]
    finally:
        keystore.close()


def main() -> None:
    state_dir = Path(tempfile.mkdtemp(prefix="scm-bench-issue-"))
    try:
        times = sorted(asyncio.run(run(state_dir)))
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
    p50 = statistics.median(times)
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print(f"cold issuance ({len(times)} rounds: P-256 key in SoftHSM2, local CA, over SDS):")
    print(f"  p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {times[-1] * 1000:.1f} ms")


if __name__ == "__main__":
    main()
