"""The Istio CA client against a grpc.aio istiod double with TLS on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from scm.config import load_settings
from scm.errors import ConfigError
from scm.keys import SoftwareKeystore
from scm.pki import (
    CAUnavailableError,
    CertificateAuthority,
    InvalidSvidError,
    IstioCA,
    IstioCASettings,
    LocalCA,
    configured_ca,
)
from tests.integration.pki.istiod_double import TOKEN, IstiodDouble
from tests.integration.pki.workloads import (
    DAY,
    SPIFFE_ID,
    assert_verifies_as_workload,
    forging,
    workload_csr,
    write_bundle,
)
from tests.spiffe_check import assert_spiffe_svid
from tests.tls import TlsFiles, make_tls

ISTIOD = "istiod.istio-system.svc"
T = TypeVar("T")


@pytest.fixture
def tls(tmp_path: Path) -> TlsFiles:
    """istiod's serving certificate names the service, as in a mesh."""
    return make_tls(tmp_path, ISTIOD)


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "istio-token"
    path.write_text(TOKEN + "\n")
    return path


def with_istiod(
    tls: TlsFiles,
    signing_ca: LocalCA,
    scenario: Callable[[IstiodDouble, str], Awaitable[T]],
    delay: float = 0.0,
) -> T:
    async def main() -> T:
        istiod = IstiodDouble(tls, signing_ca, delay)
        address = await istiod.start()
        try:
            return await scenario(istiod, address)
        finally:
            await istiod.stop()

    return asyncio.run(main())


def _settings(
    address: str, tls: TlsFiles, token_file: Path, bundle: Path | None = None
) -> IstioCASettings:
    return IstioCASettings(
        address=address,
        root_cert_file=tls.ca,
        trust_bundle_file=bundle,
        token_file=token_file,
        cluster_id="east",
        tls_server_name=ISTIOD,
        timeout_seconds=5.0,
    )


def test_issued_chain_verifies_and_the_call_carries_istio_agent_credentials(
    tls: TlsFiles, signing_ca: LocalCA, token_file: Path, tmp_path: Path
) -> None:
    csr = workload_csr()

    async def scenario(istiod: IstiodDouble, address: str) -> None:
        bundle = write_bundle(tmp_path, signing_ca)
        ca = IstioCA.from_settings(_settings(address, tls, token_file, bundle))
        assert isinstance(ca, CertificateAuthority)
        issued = await ca.sign(csr, DAY)
        assert_verifies_as_workload(issued, signing_ca.trust_bundle())
        [call] = istiod.calls
        assert x509.load_pem_x509_csr(call.csr.encode()) == csr
        assert call.validity_duration == 86400
        assert call.metadata["authorization"] == f"Bearer {TOKEN}"
        assert call.metadata["clusterid"] == "east"

    with_istiod(tls, signing_ca, scenario)


def test_configured_istio_ca_trusts_the_configured_bundle(
    tls: TlsFiles, signing_ca: LocalCA, token_file: Path, tmp_path: Path
) -> None:
    async def scenario(istiod: IstiodDouble, address: str) -> None:
        settings = load_settings(
            environ={
                "SCM_STATE_DIR": str(tmp_path / "state"),
                "SCM_CA_BACKEND": "istio",
                "SCM_ISTIO_CA_ADDRESS": address,
                "SCM_ISTIO_CA_ROOT_CERT_FILE": str(tls.ca),
                "SCM_ISTIO_CA_TOKEN_FILE": str(token_file),
                "SCM_ISTIO_CA_TLS_SERVER_NAME": ISTIOD,
                "SCM_ISTIO_CA_TRUST_BUNDLE_FILE": str(write_bundle(tmp_path, signing_ca)),
            }
        )
        ca = configured_ca(settings, SoftwareKeystore())
        assert isinstance(ca, IstioCA)
        assert ca.trust_bundle() == signing_ca.trust_bundle()
        issued = await ca.sign(workload_csr(), DAY)
        issued.leaf.verify_directly_issued_by(signing_ca.certificate)
        assert istiod.calls[0].metadata["clusterid"] == "Kubernetes"  # istio-agent's default

    with_istiod(tls, signing_ca, scenario)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("failure", ["unauthenticated", "timeout", "unavailable", "wrong-roots"])
def test_failures_are_one_line_errors_naming_the_cause(
    tls: TlsFiles, signing_ca: LocalCA, token_file: Path, tmp_path: Path, failure: str
) -> None:
    async def scenario(istiod: IstiodDouble, address: str) -> None:
        settings = _settings(address, tls, token_file)
        if failure == "unauthenticated":
            token_file.write_text("expired-token")
            message = f"Istio CA at {address} rejected the token in {token_file}"
        elif failure == "timeout":
            settings = replace(settings, timeout_seconds=0.2)
            message = f"Istio CA at {address} did not answer within 0.2s"
        elif failure == "unavailable":
            settings = replace(settings, address=f"127.0.0.1:{_closed_port()}")
            message = r"Istio CA at 127.0.0.1:\d+ is unavailable"
        else:
            settings = replace(settings, root_cert_file=make_tls(tmp_path / "other").ca)
            message = f"Istio CA at {address} is unavailable"
        with pytest.raises(CAUnavailableError, match=message) as caught:
            await IstioCA.from_settings(settings).sign(workload_csr(), DAY)
        assert "\n" not in str(caught.value)

    (tmp_path / "other").mkdir()
    with_istiod(tls, signing_ca, scenario, delay=1.0 if failure == "timeout" else 0.0)


def test_missing_token_or_roots_are_config_errors(
    tls: TlsFiles, token_file: Path, tmp_path: Path
) -> None:
    settings = _settings("127.0.0.1:1", tls, tmp_path / "no-token")
    with pytest.raises(ConfigError, match=r"cannot read istio_ca\.token_file"):
        asyncio.run(IstioCA.from_settings(settings).sign(workload_csr(), DAY))
    missing_roots = replace(settings, root_cert_file=tmp_path / "absent.pem")
    with pytest.raises(ConfigError, match=r"cannot read istio_ca\.root_cert_file"):
        IstioCA.from_settings(missing_roots)


def test_unknown_backend_is_a_config_error(tmp_path: Path) -> None:
    settings = load_settings(environ={"SCM_STATE_DIR": str(tmp_path), "SCM_CA_BACKEND": "vault"})
    expected = r"ca\.backend 'vault' is not one of local, kubernetes, istio"
    with pytest.raises(ConfigError, match=expected):
        configured_ca(settings, SoftwareKeystore())


OTHER_ID = "spiffe://example.org/ns/istio-system/sa/istiod"


@pytest.mark.parametrize(
    ("forged", "message"),
    [
        ([x509.UniformResourceIdentifier(OTHER_ID)], f"the leaf names '{OTHER_ID}' instead of"),
        (
            [x509.UniformResourceIdentifier(SPIFFE_ID), x509.DNSName("istiod.istio-system.svc")],
            "the leaf carries DNS name 'istiod.istio-system.svc' that was not asked for",
        ),
        (
            [x509.UniformResourceIdentifier(SPIFFE_ID), x509.UniformResourceIdentifier(OTHER_ID)],
            "the leaf has 2 URI SANs",
        ),
        ([], "the chain does not verify to the trust bundle"),
    ],
    ids=["another-san", "extra-dns-san", "extra-uri-san", "another-ca"],
)
def test_an_answer_that_is_not_the_requested_svid_is_refused(
    tls: TlsFiles,
    signing_ca: LocalCA,
    signing_keystore: SoftwareKeystore,
    token_file: Path,
    tmp_path: Path,
    forged: list[x509.GeneralName],
    message: str,
) -> None:
    if forged:
        issue = forging(signing_ca, signing_keystore, forged)
    else:  # a well-formed SVID, from a CA the bundle does not hold
        issue = LocalCA.init(tmp_path / "rogue", SoftwareKeystore(), "example.org").issue

    async def scenario(istiod: IstiodDouble, address: str) -> None:
        settings = _settings(address, tls, token_file, write_bundle(tmp_path, signing_ca))
        with pytest.raises(InvalidSvidError, match=f"^Istio CA at {address}: {message}"):
            await IstioCA.from_settings(settings).sign(workload_csr(), DAY)

    async def main() -> None:
        istiod = IstiodDouble(tls, signing_ca, issue=issue)
        address = await istiod.start()
        try:
            await scenario(istiod, address)
        finally:
            await istiod.stop()

    asyncio.run(main())


def test_what_istio_issues_is_an_svid_to_the_spiffe_library(
    tls: TlsFiles, signing_ca: LocalCA, token_file: Path, tmp_path: Path
) -> None:
    key = rsa.generate_private_key(65537, 3072)

    async def scenario(istiod: IstiodDouble, address: str) -> None:
        bundle = write_bundle(tmp_path, signing_ca)
        ca = IstioCA.from_settings(_settings(address, tls, token_file, bundle))
        issued = await ca.sign(workload_csr(key), DAY)
        assert_spiffe_svid(issued.chain, key, ca.trust_bundle(), SPIFFE_ID)

    with_istiod(tls, signing_ca, scenario)
