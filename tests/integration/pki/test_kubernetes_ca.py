"""The Kubernetes CSR API client against a loopback double of the real REST API."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from scm.config import load_settings
from scm.errors import ConfigError
from scm.keys import SoftwareKeystore
from scm.pki import (
    CAUnavailableError,
    CertificateAuthority,
    InvalidSvidError,
    KubernetesCA,
    KubernetesCASettings,
    LocalCA,
    configured_ca,
)
from tests.integration.pki.csr_apiserver import PREFIX, TOKEN, CsrApiServer, signer_failure
from tests.integration.pki.workloads import (
    DAY,
    SPIFFE_ID,
    assert_verifies_as_workload,
    forging,
    workload_csr,
)
from tests.spiffe_check import assert_spiffe_svid
from tests.tls import TlsFiles, make_tls

SIGNER = "tcs.intel.com/sgx-signer"
CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client"
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
    return run_with(tmp_path, tls, CsrApiServer(tls, signing_ca, outcome), scenario)


def run_with(
    tmp_path: Path,
    tls: TlsFiles,
    server: CsrApiServer,
    scenario: Callable[[CsrApiServer, Path], Awaitable[T]],
) -> T:
    """Run ``scenario(server, kubeconfig)`` against ``server``."""

    async def main() -> T:
        url = await server.start()
        try:
            return await scenario(server, _kubeconfig(tmp_path, url, tls))
        finally:
            await server.stop()

    return asyncio.run(main())


def _ca(
    kubeconfig: Path,
    bundle: Path,
    timeout: float = 10.0,
    signer: str = SIGNER,
    usages: tuple[str, ...] = (),
) -> KubernetesCA:
    settings = KubernetesCASettings(
        signer_name=signer,
        trust_bundle_file=bundle,
        kubeconfig=kubeconfig,
        timeout_seconds=timeout,
        usages=usages,
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
        # Signers and usages no real signer would sign an SVID with.
        (
            {"SCM_KUBERNETES_CA_SIGNER_NAME": "kubernetes.io/kubelet-serving"},
            "cannot issue SPIFFE X.509-SVIDs: it forbids URI SANs",
        ),
        (
            {"SCM_KUBERNETES_CA_SIGNER_NAME": "kubernetes.io/kube-apiserver-client-kubelet"},
            "cannot issue SPIFFE X.509-SVIDs: it signs only node client certificates",
        ),
        (
            {
                "SCM_KUBERNETES_CA_SIGNER_NAME": CLIENT_SIGNER,
                "SCM_KUBERNETES_CA_USAGES": "client auth, server auth",
            },
            f"kubernetes_ca.usages: signer {CLIENT_SIGNER} refuses server auth",
        ),
        (
            {"SCM_KUBERNETES_CA_SIGNER_NAME": SIGNER, "SCM_KUBERNETES_CA_USAGES": "client"},
            "kubernetes_ca.usages: client is not a Kubernetes usage",
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


OTHER_ID = "spiffe://example.org/ns/kube-system/sa/admin"


@pytest.mark.parametrize(
    ("sans", "message"),
    [
        ([x509.UniformResourceIdentifier(OTHER_ID)], f"names '{OTHER_ID}' instead of {SPIFFE_ID}"),
        (
            [x509.UniformResourceIdentifier(SPIFFE_ID), x509.DNSName("kube-apiserver")],
            "carries DNS name 'kube-apiserver' that was not asked for",
        ),
        (
            [x509.UniformResourceIdentifier(SPIFFE_ID), x509.UniformResourceIdentifier(OTHER_ID)],
            "has 2 URI SANs",
        ),
    ],
    ids=["another-san", "extra-dns-san", "extra-uri-san"],
)
def test_a_leaf_with_other_sans_is_refused(
    tmp_path: Path,
    tls: TlsFiles,
    signing_ca: LocalCA,
    signing_keystore: SoftwareKeystore,
    sans: list[x509.GeneralName],
    message: str,
) -> None:
    async def scenario(server: CsrApiServer, kubeconfig: Path) -> None:
        ca = _ca(kubeconfig, _bundle(tmp_path, signing_ca))
        with pytest.raises(InvalidSvidError, match=f"^signer {SIGNER}: the leaf {message}"):
            await ca.sign(workload_csr(), DAY)
        assert server.objects == {}

    server = CsrApiServer(tls, signing_ca, issue=forging(signing_ca, signing_keystore, sans))
    run_with(tmp_path, tls, server, scenario)


def test_a_chain_from_another_ca_is_refused(
    tmp_path: Path, tls: TlsFiles, signing_ca: LocalCA
) -> None:
    rogue = LocalCA.init(tmp_path / "rogue", SoftwareKeystore(), "example.org")

    async def scenario(server: CsrApiServer, kubeconfig: Path) -> None:
        ca = _ca(kubeconfig, _bundle(tmp_path, signing_ca))
        with pytest.raises(InvalidSvidError, match="does not verify to the trust bundle"):
            await ca.sign(workload_csr(), DAY)

    with_server(tmp_path, tls, rogue, "issue", scenario)


def test_every_issued_certificate_is_an_svid_to_the_spiffe_library(
    tmp_path: Path, tls: TlsFiles, signing_ca: LocalCA
) -> None:
    key = ec.generate_private_key(ec.SECP384R1())

    async def scenario(server: CsrApiServer, kubeconfig: Path) -> None:
        ca = _ca(kubeconfig, _bundle(tmp_path, signing_ca))
        issued = await ca.sign(workload_csr(key), DAY)
        assert_spiffe_svid(issued.chain, key, ca.trust_bundle(), SPIFFE_ID)

    with_server(tmp_path, tls, signing_ca, "issue", scenario)


def test_kube_apiserver_client_signer_gets_client_usages_and_signs(
    tmp_path: Path, tls: TlsFiles, signing_ca: LocalCA
) -> None:
    async def scenario(server: CsrApiServer, kubeconfig: Path) -> None:
        ca = _ca(kubeconfig, _bundle(tmp_path, signing_ca), signer=CLIENT_SIGNER)
        issued = await ca.sign(workload_csr(), DAY)
        assert server.requests[0].body["spec"]["usages"] == [
            "digital signature",
            "key encipherment",
            "client auth",
        ]
        assert_verifies_as_workload(issued, ca.trust_bundle())

    with_server(tmp_path, tls, signing_ca, "issue", scenario)


def test_server_auth_for_kube_apiserver_client_fails_as_the_real_signer_fails_it(
    tmp_path: Path, tls: TlsFiles, signing_ca: LocalCA, caplog: pytest.LogCaptureFixture
) -> None:
    """What scm did before: server auth in the usages of a client signer's CSR."""

    async def scenario(server: CsrApiServer, kubeconfig: Path) -> None:
        ca = _ca(kubeconfig, _bundle(tmp_path, signing_ca), signer=CLIENT_SIGNER)
        ca.usages = ("digital signature", "server auth", "client auth")
        expected = (
            rf"^signer {CLIENT_SIGNER} failed to sign CSR scm-\w+ \(SignerValidationFailure: "
            r"invalid usage for client certificate: server auth\)$"
        )
        with pytest.raises(CAUnavailableError, match=expected):
            await ca.sign(workload_csr(), DAY)
        assert server.objects == {}

    with_server(tmp_path, tls, signing_ca, "issue", scenario)
    assert "could not delete" not in caplog.text


def test_custom_usages_are_sent_and_their_auth_usages_required(
    tmp_path: Path, tls: TlsFiles, signing_ca: LocalCA
) -> None:
    async def scenario(server: CsrApiServer, kubeconfig: Path) -> None:
        ca = _ca(
            kubeconfig, _bundle(tmp_path, signing_ca), usages=("digital signature", "client auth")
        )
        await ca.sign(workload_csr(), DAY)
        assert server.requests[0].body["spec"]["usages"] == ["digital signature", "client auth"]

    with_server(tmp_path, tls, signing_ca, "issue", scenario)


def test_a_server_that_drops_expiration_seconds_is_reported(
    tmp_path: Path, tls: TlsFiles, signing_ca: LocalCA, caplog: pytest.LogCaptureFixture
) -> None:
    huge = LocalCA.load(
        tmp_path / "signing-ca", signing_ca._keystore, max_ttl=datetime.timedelta(days=365)
    )

    async def scenario(server: CsrApiServer, kubeconfig: Path) -> None:
        ca = _ca(kubeconfig, _bundle(tmp_path, signing_ca))
        issued = await ca.sign(workload_csr(), DAY)
        assert issued.not_after - issued.leaf.not_valid_before_utc > 300 * DAY

    server = CsrApiServer(tls, huge, legacy_expiration=True)
    with caplog.at_level(logging.WARNING, logger="scm.pki.kubernetes_ca"):
        run_with(tmp_path, tls, server, scenario)
    [record] = [r for r in caplog.records if "expirationSeconds" in r.getMessage()]
    assert "although 1 day, 0:00:00 was requested" in record.getMessage()
    assert "the API server dropped spec.expirationSeconds (Kubernetes before 1.22)" in (
        record.getMessage()
    )


def test_an_honoured_lifetime_is_not_reported(
    tmp_path: Path, tls: TlsFiles, signing_ca: LocalCA, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(server: CsrApiServer, kubeconfig: Path) -> None:
        await _ca(kubeconfig, _bundle(tmp_path, signing_ca)).sign(workload_csr(), DAY)

    with caplog.at_level(logging.WARNING, logger="scm.pki.kubernetes_ca"):
        with_server(tmp_path, tls, signing_ca, "issue", scenario)
    assert caplog.records == []


def test_a_csr_deleted_while_waiting_is_one_error_without_a_stray_warning(
    tmp_path: Path, tls: TlsFiles, signing_ca: LocalCA, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(server: CsrApiServer, kubeconfig: Path) -> None:
        ca = _ca(kubeconfig, _bundle(tmp_path, signing_ca))
        with pytest.raises(
            CAUnavailableError, match=r"CSR scm-\w+ was deleted before it was signed"
        ):
            await ca.sign(workload_csr(), DAY)
        assert server.paths()[-1][0] == "DELETE"  # still tried: the object might exist

    with caplog.at_level(logging.WARNING, logger="scm.pki.kubernetes_ca"):
        with_server(tmp_path, tls, signing_ca, "vanish", scenario)
    assert caplog.records == []


def _node_csr(
    sans: list[x509.GeneralName], organization: str = "system:nodes"
) -> x509.CertificateSigningRequest:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, "system:node:worker-1"),
        ]
    )
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())


@pytest.mark.parametrize(
    ("csr", "usages", "failure"),
    [
        (_node_csr([x509.DNSName("worker-1")]), ["digital signature", "server auth"], None),
        (
            _node_csr([x509.UniformResourceIdentifier(SPIFFE_ID)]),
            ["digital signature", "server auth"],
            "URI subjectAltNames are not allowed",
        ),
        (
            _node_csr([]),
            ["digital signature", "server auth"],
            "DNS or IP subjectAltName is required",
        ),
        (
            workload_csr(),
            ["digital signature", "server auth"],
            "subject organization is not system:nodes",
        ),
        (
            _node_csr([x509.DNSName("worker-1")]),
            ["digital signature", "client auth"],
            "invalid usage for kubelet serving certificate: client auth",
        ),
    ],
    ids=["node-serving", "uri-san", "no-dns-or-ip", "no-node-identity", "client-auth"],
)
def test_the_double_fails_kubelet_serving_csrs_as_kube_controller_manager_does(
    csr: x509.CertificateSigningRequest, usages: list[str], failure: str | None
) -> None:
    spec = {"signerName": "kubernetes.io/kubelet-serving", "usages": usages}
    assert signer_failure(spec, csr) == failure
