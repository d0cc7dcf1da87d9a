"""The Kubernetes CSR API client against a loopback double of the real REST API."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from scm.config import load_settings
from scm.errors import ConfigError
from scm.keys import SoftwareKeystore
from scm.pki import (
    CAUnavailableError,
    CertificateAuthority,
    KubernetesCA,
    KubernetesCASettings,
    LocalCA,
    configured_ca,
)
from tests.integration.pki.csr_apiserver import PREFIX, TOKEN, CsrApiServer
from tests.integration.pki.workloads import DAY, assert_verifies_as_workload, workload_csr
from tests.tls import TlsFiles, make_tls

SIGNER = "tcs.intel.com/sgx-signer"
T = TypeVar("T")


@pytest.fixture
def tls(tmp_path: Path) -> TlsFiles:
    return make_tls(tmp_path)


def _kubeconfig(tmp_path: Path, url: str, tls: TlsFiles, token: str = TOKEN) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "c", "cluster": {"server": url, "certificate-authority": str(tls.ca)}}
                ],
                "users": [{"name": "sds", "user": {"token": token}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "sds"}}],
                "current-context": "c",
            }
        )
    )
    return path


def _bundle(tmp_path: Path, ca: LocalCA) -> Path:
    path = tmp_path / "signer-root.pem"
    path.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in ca.trust_bundle()))
    return path


def with_server(
    tmp_path: Path,
    tls: TlsFiles,
    signing_ca: LocalCA,
    outcome: str,
    scenario: Callable[[CsrApiServer, Path], Awaitable[T]],
) -> T:
    """Run ``scenario(server, kubeconfig)`` against a CSR API double."""

    async def main() -> T:
        server = CsrApiServer(tls, signing_ca, outcome)
        url = await server.start()
        try:
            return await scenario(server, _kubeconfig(tmp_path, url, tls))
        finally:
            await server.stop()

    return asyncio.run(main())


def _ca(kubeconfig: Path, bundle: Path, timeout: float = 10.0) -> KubernetesCA:
    settings = KubernetesCASettings(
        signer_name=SIGNER,
        trust_bundle_file=bundle,
        kubeconfig=kubeconfig,
        timeout_seconds=timeout,
    )
    return KubernetesCA.from_settings(settings)


@pytest.mark.parametrize("key_type", ["ec", "rsa"])
def test_issued_chain_verifies_and_the_csr_object_is_removed(
    tmp_path: Path, tls: TlsFiles, signing_ca: LocalCA, key_type: str
) -> None:
    key = (
        ec.generate_private_key(ec.SECP256R1())
        if key_type == "ec"
        else rsa.generate_private_key(65537, 2048)
    )
    csr = workload_csr(key)

    async def scenario(server: CsrApiServer, kubeconfig: Path) -> None:
        ca = _ca(kubeconfig, _bundle(tmp_path, signing_ca))
        assert isinstance(ca, CertificateAuthority)
        issued = await ca.sign(csr, DAY)
        assert_verifies_as_workload(issued, ca.trust_bundle())

        create, watch, delete = server.requests
        assert (create.method, create.path) == ("POST", PREFIX)
        spec = create.body["spec"]
        assert spec["signerName"] == SIGNER
        assert spec["expirationSeconds"] == 86400
        assert base64.b64decode(spec["request"]) == csr.public_bytes(Encoding.PEM)
        usages = {"digital signature", "key encipherment", "server auth", "client auth"}
        assert set(spec["usages"]) == usages
        assert create.body["metadata"] == {"generateName": "scm-"}
        name = watch.query["fieldSelector"].removeprefix("metadata.name=")
        assert name.startswith("scm-")
        assert (watch.method, watch.path, watch.query["watch"]) == ("GET", PREFIX, "true")
        assert watch.query["resourceVersion"] == "101"  # the version the create returned
        assert (delete.method, delete.path) == ("DELETE", f"{PREFIX}/{name}")
        assert server.objects == {}

    with_server(tmp_path, tls, signing_ca, "issue", scenario)


def test_short_ttl_asks_for_the_api_minimum(
    tmp_path: Path, tls: TlsFiles, signing_ca: LocalCA
) -> None:
    async def scenario(server: CsrApiServer, kubeconfig: Path) -> None:
        ca = _ca(kubeconfig, _bundle(tmp_path, signing_ca))
        await ca.sign(workload_csr(), datetime.timedelta(minutes=1))
        assert server.requests[0].body["spec"]["expirationSeconds"] == 600

    with_server(tmp_path, tls, signing_ca, "issue", scenario)


@pytest.mark.parametrize(
    ("outcome", "message"),
    [
        ("deny", r"CSR scm-\w+ for signer .* was denied \(PolicyDenied: SAN not allowed\)"),
        ("ignore", r"no certificate from signer .* within 0.3s: CSR scm-\w+ was not approved"),
        ("approve-only", r"within 0.3s: CSR scm-\w+ was approved but not signed"),
    ],
)
def test_denied_or_unanswered_csr_is_a_one_line_error_and_is_removed(
    tmp_path: Path, tls: TlsFiles, signing_ca: LocalCA, outcome: str, message: str
) -> None:
    async def scenario(server: CsrApiServer, kubeconfig: Path) -> None:
        ca = _ca(kubeconfig, _bundle(tmp_path, signing_ca), timeout=0.3)
        with pytest.raises(CAUnavailableError, match=message) as caught:
            await ca.sign(workload_csr(), DAY)
        assert "\n" not in str(caught.value)
        assert server.paths()[-1][0] == "DELETE"
        assert server.objects == {}

    with_server(tmp_path, tls, signing_ca, outcome, scenario)


def test_rejected_credentials_name_the_cause(
    tmp_path: Path, tls: TlsFiles, signing_ca: LocalCA
) -> None:
    async def scenario(server: CsrApiServer, kubeconfig: Path) -> None:
        url = json.loads(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
        ca = _ca(_kubeconfig(tmp_path, url, tls, token="stale"), _bundle(tmp_path, signing_ca))
        with pytest.raises(CAUnavailableError, match="refused to create a CSR: 401 Unauthorized"):
            await ca.sign(workload_csr(), DAY)
        assert server.objects == {}

    with_server(tmp_path, tls, signing_ca, "issue", scenario)


def test_configured_in_cluster_with_the_service_account(
    tmp_path: Path, tls: TlsFiles, signing_ca: LocalCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text(TOKEN)
    (account / "namespace").write_text("scm-system")
    (account / "ca.crt").write_bytes(tls.ca.read_bytes())

    async def scenario(server: CsrApiServer, kubeconfig: Path) -> None:
        port = kubeconfig.read_text().split("127.0.0.1:")[1].split('"')[0]
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", port)
        settings = load_settings(
            environ={
                "SCM_STATE_DIR": str(tmp_path / "state"),
                "SCM_CA_BACKEND": "kubernetes",
                "SCM_KUBERNETES_CA_SIGNER_NAME": SIGNER,
                "SCM_KUBERNETES_CA_TRUST_BUNDLE_FILE": str(_bundle(tmp_path, signing_ca)),
                "SCM_KUBERNETES_CA_SERVICE_ACCOUNT_DIR": str(account),
            }
        )
        ca = configured_ca(settings, SoftwareKeystore())
        assert isinstance(ca, KubernetesCA)
        issued = await ca.sign(workload_csr(), DAY)
        issued.leaf.verify_directly_issued_by(signing_ca.certificate)

    with_server(tmp_path, tls, signing_ca, "issue", scenario)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "kubernetes_ca.signer_name is not set"),
        ({"SCM_KUBERNETES_CA_SIGNER_NAME": SIGNER}, "kubernetes_ca.trust_bundle_file is not set"),
        (
            {
                "SCM_KUBERNETES_CA_SIGNER_NAME": SIGNER,
                "SCM_KUBERNETES_CA_TRUST_BUNDLE_FILE": "/nonexistent/root.pem",
            },
            "cannot read kubernetes_ca.trust_bundle_file /nonexistent/root.pem",
        ),
    ],
)
def test_incomplete_settings_are_one_line_config_errors(
    tmp_path: Path, environ: dict[str, str], message: str
) -> None:
    settings = load_settings(
        environ={"SCM_STATE_DIR": str(tmp_path), "SCM_CA_BACKEND": "kubernetes", **environ}
    )
    with pytest.raises(ConfigError, match=message):
        configured_ca(settings, SoftwareKeystore())
