"""The pool of pre-generated token keys, and a first request under a disk fault."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from scm.keys import Pkcs11Keystore
from scm.pki import LocalCA
from scm.sds import DEFAULT, KeyProviderConfig, Pins, SecretRenderer
from scm.sds.issuer import CertificateIssuer
from scm.sds.leafkeys import HSM
from tests.integration.sds.client import fetch_secret
from tests.integration.sds.harness import ServerThread, wait_for
from tests.integration.sds.issuing import make_issuer
from tests.integration.sds.test_state_faults import issued_labels, read_only


def pooled(
    tmp_path: Path, keystore: Pkcs11Keystore, ca: LocalCA, size: int = 2
) -> CertificateIssuer:
    base = make_issuer(tmp_path, keystore, ca, HSM, datetime.timedelta(hours=1))
    return CertificateIssuer(
        base.ca, base.keys, base.identity, base.records, base.policy, pool_size=size
    )


async def filled(issuer: CertificateIssuer) -> None:
    await issuer.start_pool()
    assert issuer.pool is not None
    for _ in range(2000):
        if len(issuer.pool) == issuer.pool.size:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the pool did not fill")


def test_pool_keys_are_used_once_refilled_and_deleted_unused_on_shutdown(
    tmp_path: Path, token_keystore: Pkcs11Keystore, local_ca: LocalCA
) -> None:
    others = issued_labels(token_keystore)
    issuer = pooled(tmp_path, token_keystore, local_ca)

    async def scenario() -> list[str]:
        await filled(issuer)
        assert issuer.pool is not None
        pooled_labels = set(issuer.pool._ready)
        # pool keys are accounted for before any record holds them
        assert pooled_labels <= issuer.records.in_progress().keys()
        used = []
        for _ in range(5):
            used.append((await issuer.issue()).key_label)
            await filled(issuer)
        assert used[0] in pooled_labels  # the first issuance took a ready key
        assert len(set(used)) == len(used)  # never served twice
        assert not set(used) & set(issuer.pool._ready)
        await issuer.aclose()
        return used

    used = asyncio.run(scenario())
    record = issuer.records.load(DEFAULT)
    assert record is not None and record.key_label == used[-1]
    # unused pool keys went with the shutdown; every other key is the record's
    assert issued_labels(token_keystore) - others == record.labels() == set(used)
    assert issuer.records.in_progress() == {}


def test_a_first_request_on_a_read_only_state_is_refused_cleanly_and_leaves_no_key(
    tmp_path: Path,
    token_keystore: Pkcs11Keystore,
    local_ca: LocalCA,
    socket_path: Path,
    start_issuing: Callable[..., ServerThread],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    others = issued_labels(token_keystore)
    issuer = pooled(tmp_path, token_keystore, local_ca)
    sds = start_issuing(issuer, SecretRenderer(KeyProviderConfig(pins=Pins("1234", "5678"))))
    assert issuer.pool is not None
    wait_for(lambda: len(issuer.pool) == 2, timeout=60, what="the pool to fill")  # type: ignore[arg-type]
    pool_keys = set(issuer.pool._ready)

    with read_only(tmp_path / "sds", monkeypatch) as fault:
        for _ in range(3):
            with pytest.raises(grpc.RpcError) as refused:
                fetch_secret(socket_path, DEFAULT)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, fault
            message = refused.value.details()
            assert message.startswith("cannot issue default: the state directory is read-only")
            assert "\n" not in message and "OSError" not in message
        # the pool key each attempt took was deleted; nothing else was made
        left = issued_labels(token_keystore) - others
        assert left <= pool_keys and len(left) < len(pool_keys)
        assert issuer.health.failures_total == 3
        assert sds.metric("scm_sds_issuance_failures_total") == 3

    secret = wait_for(lambda: fetch_secret(socket_path, DEFAULT), what="issuance once writable")
    assert secret.tls_certificate.certificate_chain.inline_bytes
