"""Issuance end to end: the real local CA, the real token, real Envoy 1.40."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable
from pathlib import Path

from cryptography import x509

from scm.keys import KeyType, Pkcs11Keystore
from scm.pki import LocalCA, build_csr
from scm.sds import DEFAULT, ROOTCA, HsmKey, SecretStore
from scm.sds.credentials import Credential
from scm.sds.leafkeys import HSM, SOFTWARE
from scm.sds.renewal import Backoff, Renewer
from tests.certs import cert_pem
from tests.integration.sds.harness import Envoy, ServerThread, handshake, wait_for
from tests.integration.sds.issuing import WORKLOAD, SwitchableCA, client_files, make_issuer

FAST_RETRY = Backoff(initial=0.2, maximum=0.5)


def spiffe_ids(certificate: x509.Certificate) -> list[str]:
    sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return sans.get_values_for_type(x509.UniformResourceIdentifier)


def test_envoy_gets_a_certificate_issued_by_the_local_ca_on_first_request(
    tmp_path: Path,
    token_keystore: Pkcs11Keystore,
    local_ca: LocalCA,
    socket_path: Path,
    start_issuing: Callable[..., ServerThread],
) -> None:
    issuer = make_issuer(tmp_path, token_keystore, local_ca, SOFTWARE)
    sds = start_issuing(issuer)
    assert sds.store.get(DEFAULT) is None  # nothing is issued before Envoy asks
    ca_pem = cert_pem(local_ca.certificate)
    with Envoy(tmp_path, socket_path, "GRPC") as envoy:
        port = wait_for(envoy.listener_port, what="Envoy's TLS listener")
        served = wait_for(
            lambda: handshake(port, ca_pem, *client_files(local_ca, tmp_path)), what="handshake"
        )
    assert served.issuer == local_ca.certificate.subject
    assert spiffe_ids(served) == [WORKLOAD.spiffe_id]
    assert issuer.current is not None and served == issuer.current.chain[0]
    stored = sds.store.get(ROOTCA)
    assert stored is not None and stored.value.certificates == (local_ca.certificate,)  # type: ignore[union-attr]
    assert sds.metric("scm_sds_certificates_issued_total") == 1
    assert sds.metric("scm_sds_issuance_seconds_count") == 1


def test_renewal_reaches_envoy_on_the_same_stream_and_old_keys_are_retired(
    tmp_path: Path,
    token_keystore: Pkcs11Keystore,
    local_ca: LocalCA,
    socket_path: Path,
    start_issuing: Callable[..., ServerThread],
) -> None:
    # renewal starts when 80% of the 4 s lifetime is left: every 0.8 s
    ttl = datetime.timedelta(seconds=4)
    issuer = make_issuer(tmp_path, token_keystore, local_ca, SOFTWARE, ttl, grace_ratio=0.8)
    sds = start_issuing(issuer)
    ca_pem = cert_pem(local_ca.certificate)
    client = client_files(local_ca, tmp_path)
    with Envoy(tmp_path, socket_path, "GRPC") as envoy:
        port = wait_for(envoy.listener_port, what="Envoy's TLS listener")
        first = wait_for(lambda: handshake(port, ca_pem, *client), what="handshake")
        assert issuer.current is not None
        first_key = issuer.current.key_label
        streams = sds.metric("scm_sds_streams_opened_total", api="sotw")

        renewed = wait_for(
            lambda: (leaf := handshake(port, ca_pem, *client)) != first and leaf,
            what="Envoy to serve a renewed certificate",
        )
        assert renewed.public_key() != first.public_key()  # a new key, not just a new cert
        assert spiffe_ids(renewed) == [WORKLOAD.spiffe_id]
        assert sds.metric("scm_sds_streams_opened_total", api="sotw") == streams
        assert envoy.stat("sds.default.update_success") >= 2
        assert sds.metric("scm_sds_nacks_total", api="sotw") == 0
        # the first key goes once its certificate has expired, not before
        wait_for(
            lambda: issuer.keys.keystore.find(first_key) is None,
            what="the first key to be retired",
        )
        assert datetime.datetime.now(datetime.UTC) >= first.not_valid_after_utc


def test_ca_outage_keeps_the_current_certificate_and_recovers(
    tmp_path: Path,
    token_keystore: Pkcs11Keystore,
    local_ca: LocalCA,
    socket_path: Path,
    start_issuing: Callable[..., ServerThread],
) -> None:
    ca = SwitchableCA(local_ca)
    # renewal starts 2 s after issuance (90% of 20 s left); the certificate stays valid
    ttl = datetime.timedelta(seconds=20)
    issuer = make_issuer(tmp_path, token_keystore, ca, SOFTWARE, ttl, grace_ratio=0.9)
    sds = start_issuing(issuer, backoff=FAST_RETRY)
    ca_pem = cert_pem(local_ca.certificate)
    client = client_files(local_ca, tmp_path)
    with Envoy(tmp_path, socket_path, "GRPC") as envoy:
        port = wait_for(envoy.listener_port, what="Envoy's TLS listener")
        first = wait_for(lambda: handshake(port, ca_pem, *client), what="handshake")
        ca.down = True

        wait_for(lambda: issuer.health.consecutive_failures >= 2, what="failed retries")
        status = issuer.health.status()
        assert status["ca_reachable"] is False and "unreachable" in status["last_error"]
        assert status["next_retry"] is not None
        assert sds.metric("scm_sds_issuance_failures_total") >= 2
        assert handshake(port, ca_pem, *client) == first  # still served
        assert len(issuer.keys.keystore.list()) == 1  # failed attempts left no keys behind

        ca.down = False
        wait_for(lambda: handshake(port, ca_pem, *client) != first, what="recovery")
        assert issuer.health.status()["ca_reachable"] is True


def test_hsm_mode_keys_stay_in_the_token_and_imported_credentials_are_served(
    tmp_path: Path,
    token_keystore: Pkcs11Keystore,
    local_ca: LocalCA,
    label: str,
) -> None:
    issuer = make_issuer(tmp_path, token_keystore, local_ca, HSM)
    # a gateway key and certificate as `scm keys import` leaves them in the token
    gateway_key = token_keystore.generate(f"gw-{label}", KeyType.EC_P256)
    csr = build_csr(WORKLOAD, token_keystore.signer(gateway_key.label))
    gateway_leaf = local_ca.issue(csr, datetime.timedelta(hours=1)).leaf
    token_keystore.store_certificate(gateway_key.label, cert_pem(gateway_leaf))

    default = asyncio.run(issuer.provide(DEFAULT))
    assert isinstance(default, Credential) and isinstance(default.key, HsmKey)
    info = token_keystore.find(default.key.key_label)
    assert info is not None and info.sensitive and info.never_extractable
    assert not info.extractable

    gateway = asyncio.run(issuer.provide(gateway_key.label))
    assert isinstance(gateway, Credential) and gateway.leaf == gateway_leaf
    assert gateway.key == HsmKey(gateway_key.label, "scm", "ec-p256")
    # the CA's own key is in the same token, with its certificate: never served
    assert asyncio.run(issuer.provide(local_ca.key_label)) is None


def test_restart_near_expiry_serves_the_recorded_certificate_then_renews_it(
    tmp_path: Path, token_keystore: Pkcs11Keystore, local_ca: LocalCA
) -> None:
    ttl = datetime.timedelta(seconds=30)

    async def scenario() -> tuple[Credential, Credential, Credential]:
        before = make_issuer(tmp_path, token_keystore, local_ca, HSM, ttl, grace_ratio=0.99)
        issued = await before.provide(DEFAULT)
        # a "restarted" server: a new issuer over the same token and state directory
        after = make_issuer(tmp_path, token_keystore, local_ca, HSM, ttl, grace_ratio=0.99)
        store = SecretStore(after)
        served = (await store.obtain(DEFAULT)).value
        renewer = asyncio.create_task(Renewer(store, after).run())
        try:
            for _ in range(200):
                current = store.get(DEFAULT)
                if current is not None and current.value != served:
                    break
                await asyncio.sleep(0.05)
        finally:
            renewer.cancel()
        renewed = store.get(DEFAULT)
        assert renewed is not None
        return issued, served, renewed.value  # type: ignore[return-value]

    issued, served, renewed = asyncio.run(scenario())
    assert served == issued  # the same key and certificate after the restart
    assert renewed.leaf != issued.leaf  # ...renewed at once, being within the grace period
