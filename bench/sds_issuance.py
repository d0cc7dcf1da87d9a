"""Cold issuance: from the first request for ``default`` to the response.

Each round starts a fresh SDS server whose issuer has nothing recorded, so the request
makes it issue: a P-256 key in the embedded SoftHSM2 token (made then, or taken from the
pool of pre-generated keys), the CSR signed in the token, the certificate signed by the
local CA (its key in the same token), the record written and the answer sent. Only the
request is timed. In the same run, for comparison: raw PKCS#11 through scm's keystore,
one key generation plus two signatures (what issuance cannot avoid without a pool).
Prints p50/p99 and failed rounds; figures only. Rounds: ``SCM_BENCH_ISSUANCE_ROUNDS``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from envoy.service.secret.v3 import sds_pb2_grpc
from tests.integration.sds.client import request

from scm.config import load_settings
from scm.keys import KeyType, Pkcs11Keystore, open_keystore
from scm.pki import LocalCA
from scm.sds import DEFAULT, SdsServer, SecretRenderer, SecretStore, ServerOptions
from scm.sds.issuer import CertificateIssuer
from scm.sds.issuing import build_issuer, embedded_token_pins
from scm.sds.keyprovider import KeyProviderConfig
from scm.sds.leafkeys import HSM
from scm.sds.listeners import UnixListener

ROUNDS = int(os.environ.get("SCM_BENCH_ISSUANCE_ROUNDS", "60"))
POOL_READY_TIMEOUT_S = 10.0


async def one_round(
    state_dir: Path, build: Callable[[], CertificateIssuer], renderer: SecretRenderer
) -> float | None:
    """Seconds for one cold request; None when the round failed (counted, not timed)."""
    issuer = build()
    socket_path = state_dir / "sds.sock"
    server = SdsServer(
        SecretStore(issuer), renderer, ServerOptions(unix=(UnixListener(socket_path),))
    )
    await server.start()
    try:
        await issuer.start_pool()
        if issuer.pool is not None:  # not timed: a server has been up a while in real life
            deadline = time.monotonic() + POOL_READY_TIMEOUT_S
            while len(issuer.pool) < issuer.pool.size and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
        async with grpc.aio.insecure_channel(f"unix:{socket_path}") as channel:
            stub = sds_pb2_grpc.SecretDiscoveryServiceStub(channel)
            await asyncio.wait_for(channel.channel_ready(), 10)
            started = time.perf_counter()
            try:
                await stub.FetchSecrets(request([DEFAULT]), timeout=10)
            except grpc.RpcError:
                return None
            return time.perf_counter() - started
    finally:
        await issuer.aclose()
        await server.stop(0)
        # not timed: forget this round's key and record so the next round is cold again
        if issuer.current is not None:
            issuer.keys.delete_if_present(issuer.current.key_label)
        issuer.records.path(DEFAULT).unlink(missing_ok=True)


def raw_round(keystore: Pkcs11Keystore, ca_label: str) -> float:
    """One token key generation and two signatures (the CSR's, the CA's), timed."""
    label = f"bench-raw-{secrets.token_hex(6)}"
    started = time.perf_counter()
    keystore.generate(label, KeyType.EC_P256)
    keystore.signer(label).sign(b"certificate request to be signed", ec.ECDSA(hashes.SHA256()))
    keystore.signer(ca_label).sign(b"certificate to be signed", ec.ECDSA(hashes.SHA256()))
    elapsed = time.perf_counter() - started
    keystore.delete(label)
    return elapsed


async def run(state_dir: Path) -> dict[str, tuple[list[float], int]]:
    settings = load_settings(environ={"SCM_STATE_DIR": str(state_dir)})
    keystore = open_keystore(settings)
    ca = LocalCA.init(state_dir, keystore, "cluster.local")
    renderer = SecretRenderer(KeyProviderConfig(pins=embedded_token_pins(settings)))
    names = ("no pool", "pool of 2", "raw PKCS#11")
    times: dict[str, list[float]] = {name: [] for name in names}
    failed = dict.fromkeys(names, 0)
    try:

        def build(pool: int) -> CertificateIssuer:
            issuer = build_issuer(settings, keystore, ca, HSM, "24h")
            return CertificateIssuer(
                issuer.ca, issuer.keys, issuer.identity, issuer.records, issuer.policy,
                pool_size=pool,
            )  # fmt: skip

        await one_round(state_dir, lambda: build(0), renderer)  # warm-up: imports, session
        # interleaved, so that load from other processes falls on all three alike
        for _ in range(ROUNDS):
            for name, pool in (("no pool", 0), ("pool of 2", 2)):
                elapsed = await one_round(state_dir, lambda pool=pool: build(pool), renderer)
                if elapsed is None:
                    failed[name] += 1
                else:
                    times[name].append(elapsed)
            times["raw PKCS#11"].append(await asyncio.to_thread(raw_round, keystore, ca.key_label))
        results = {name: (times[name], failed[name]) for name in names}
    finally:
        keystore.close()
    return results


def main() -> None:
    state_dir = Path(tempfile.mkdtemp(prefix="scm-bench-issue-"))
    try:
        results = asyncio.run(run(state_dir))
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
    print(f"cold issuance of 'default' over SDS ({ROUNDS} rounds each, P-256, SoftHSM2):")
    labels = {
        "no pool": "issuance, key made on request",
        "pool of 2": "issuance, key from the pool",
        "raw PKCS#11": "raw: key generation + 2 signatures",
    }
    for name, (times, failed) in results.items():
        times.sort()
        if not times:
            print(f"  {labels[name]:<38} all {failed} rounds failed")
            continue
        p50 = statistics.median(times)
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        print(
            f"  {labels[name]:<38} p50 {p50 * 1000:6.1f} ms  p99 {p99 * 1000:6.1f} ms  "
            f"failed {failed}"
        )


if __name__ == "__main__":
    main()
