"""The SDS server serves `default` only when it is the X.509-SVID of its identity."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from scm.keys import Pkcs11Keystore
from scm.pki import IssuedCertificate, LocalCA, WorkloadIdentity
from scm.sds import DEFAULT, ROOTCA
from scm.sds.issuer import IssuanceError
from scm.sds.leafkeys import HSM, SOFTWARE
from tests.integration.sds.client import fetch_secret
from tests.integration.sds.harness import ServerThread
from tests.integration.sds.issuing import WORKLOAD, make_issuer
from tests.spiffe_check import assert_spiffe_svid


def test_default_served_over_sds_is_an_svid_to_the_spiffe_library(
    tmp_path: Path,
    token_keystore: Pkcs11Keystore,
    local_ca: LocalCA,
    socket_path: Path,
    start_issuing: Callable[..., ServerThread],
) -> None:
    start_issuing(make_issuer(tmp_path, token_keystore, local_ca, SOFTWARE))
    default = fetch_secret(socket_path, DEFAULT).tls_certificate
    roots = fetch_secret(socket_path, ROOTCA).validation_context.trusted_ca.inline_bytes
    chain = x509.load_pem_x509_certificates(default.certificate_chain.inline_bytes)
    key = load_pem_private_key(default.private_key.inline_bytes, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)  # software key mode: sent inline
    assert_spiffe_svid(chain, key, x509.load_pem_x509_certificates(roots), WORKLOAD.spiffe_id)


class ImpostorCA:
    """A CA that answers every CSR with another workload's certificate."""

    def __init__(self, ca: LocalCA, other: IssuedCertificate) -> None:
        self.ca = ca
        self.other = other

    async def sign(
        self, csr: x509.CertificateSigningRequest, ttl: datetime.timedelta
    ) -> IssuedCertificate:
        return self.other

    def trust_bundle(self) -> list[x509.Certificate]:
        return self.ca.trust_bundle()


def test_a_certificate_for_another_key_is_not_served_and_its_key_is_deleted(
    tmp_path: Path, token_keystore: Pkcs11Keystore, local_ca: LocalCA
) -> None:
    for side in ("a", "b"):
        (tmp_path / side).mkdir()
    honest = make_issuer(tmp_path / "a", token_keystore, local_ca, HSM)
    other = asyncio.run(honest.obtain())
    impostor = ImpostorCA(local_ca, IssuedCertificate(list(other.chain)))
    issuer = make_issuer(tmp_path / "b", token_keystore, impostor, HSM)  # type: ignore[arg-type]
    before = {info.label for info in token_keystore.list()}
    expected = "^the issued default certificate: the leaf certifies another key"
    with pytest.raises(IssuanceError, match=expected):
        asyncio.run(issuer.obtain())
    assert {info.label for info in token_keystore.list()} == before  # nothing half-created
    assert issuer.current is None


def test_a_recorded_certificate_for_another_identity_is_replaced(
    tmp_path: Path,
    token_keystore: Pkcs11Keystore,
    local_ca: LocalCA,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = make_issuer(tmp_path, token_keystore, local_ca, HSM)
    recorded = asyncio.run(first.obtain())
    # The settings now name another service account: the record must not be served.
    renamed = make_issuer(tmp_path, token_keystore, local_ca, HSM)
    renamed.identity = dataclasses.replace(WORKLOAD, service_account="checkout")
    with caplog.at_level(logging.INFO, logger="scm.sds.issuer"):
        served = asyncio.run(renamed.obtain())
    assert served.chain[0] != recorded.chain[0]
    sans = served.chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == [
        WorkloadIdentity("cluster.local", "shop", "checkout").spiffe_id
    ]
    assert f"it was issued for {WORKLOAD.spiffe_id}" in caplog.text
    assert "issuing anew" in caplog.text
