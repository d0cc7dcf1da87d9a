"""``scm keys`` and ``scm ca`` as a user runs them: each command a process with its own token."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from scm.pki import WorkloadIdentity, build_csr, csr_to_pem
from tests.certs import TestCA, cert_pem, key_pem
from tests.tls import make_tls

SCM = shutil.which("scm", path=str(Path(sys.executable).parent)) or "scm"


@pytest.fixture
def scm(tmp_path: Path):  # type: ignore[no-untyped-def]
    state = tmp_path / "state"

    def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        environ = {**os.environ, "SCM_STATE_DIR": str(state), **env}
        if "SCM_PKCS11_PIN" not in env:
            environ.pop("SCM_PKCS11_PIN", None)  # the embedded token's own PIN file applies
        return subprocess.run([SCM, *args], capture_output=True, text=True, timeout=60, env=environ)

    run.state = state  # type: ignore[attr-defined]
    return run


def _fails(result: subprocess.CompletedProcess[str], code: int, message: str) -> None:
    assert result.returncode == code, result.stderr
    assert result.stderr.startswith("scm: error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1  # one line, no traceback


def test_keys_lifecycle_and_attributes(scm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert scm("keys", "generate", "web", "--type", "ec-p384").returncode == 0
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "gw.pem").write_bytes(key_pem)
    result = scm("keys", "import", "gw", "--key", str(tmp_path / "gw.pem"))
    assert result.returncode == 0, result.stderr
    listed = json.loads(scm("keys", "list", "--format", "json").stdout)
    by_label = {k["label"]: k for k in listed}
    assert by_label["web"]["type"] == "ec-p384"
    assert by_label["web"]["never_extractable"] is True
    for entry in listed:
        assert (entry["sensitive"], entry["extractable"]) == (True, False)
    body = key_pem.splitlines()[1]
    scalar = key.private_numbers().private_value.to_bytes(32, "big")
    for path in scm.state.rglob("*"):
        if path.is_file():
            assert body not in path.read_bytes() and scalar not in path.read_bytes()
    pin = (scm.state / "softhsm" / "user.pin").stat()
    assert pin.st_mode & 0o077 == 0
    assert scm("keys", "delete", "gw").returncode == 0
    assert [k["label"] for k in json.loads(scm("keys", "list", "--format", "json").stdout)] == [
        "web"
    ]


def test_ca_init_show_issue(scm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert scm("ca", "init", "--trust-domain", "example.org").returncode == 0
    shown = scm("ca", "show", "--pem")
    ca_cert = x509.load_pem_x509_certificate(shown.stdout.encode())
    identity = WorkloadIdentity("example.org", "shop", "web")
    (tmp_path / "ok.csr").write_bytes(
        csr_to_pem(build_csr(identity, ec.generate_private_key(ec.SECP256R1())))
    )
    issued = scm("ca", "issue", "--csr", str(tmp_path / "ok.csr"), "--ttl", "1h")
    assert issued.returncode == 0, issued.stderr
    chain = x509.load_pem_x509_certificates(issued.stdout.encode())
    chain[0].verify_directly_issued_by(ca_cert)
    foreign = WorkloadIdentity("evil.org", "shop", "web")
    (tmp_path / "bad.csr").write_bytes(
        csr_to_pem(build_csr(foreign, ec.generate_private_key(ec.SECP256R1())))
    )
    _fails(scm("ca", "issue", "--csr", str(tmp_path / "bad.csr")), 65, "outside trust domain")
    # What an attacker with CSR access tried: a masters subject and someone else's host name.
    masters = x509.Name(
        [
            x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "system:masters"),
            x509.NameAttribute(x509.NameOID.COMMON_NAME, "admin"),
        ]
    )
    key = ec.generate_private_key(ec.SECP256R1())
    for name, sans in (
        ("masters", [x509.UniformResourceIdentifier(identity.spiffe_id)]),
        (
            "google",
            [x509.UniformResourceIdentifier(identity.spiffe_id), x509.DNSName("www.google.com")],
        ),
    ):
        request = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(masters)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(key, hashes.SHA256())
        )
        (tmp_path / f"{name}.csr").write_bytes(csr_to_pem(request))
    issued = scm("ca", "issue", "--csr", str(tmp_path / "masters.csr"))
    assert x509.load_pem_x509_certificates(issued.stdout.encode())[0].subject == x509.Name([])
    _fails(
        scm("ca", "issue", "--csr", str(tmp_path / "google.csr")),
        65,
        "DNS name 'www.google.com' is not signed: [ca] dns_suffixes is empty",
    )
    _fails(scm("ca", "init"), 73, "a CA exists already")
    _fails(scm("ca", "issue", "--csr", str(tmp_path / "ok.csr"), "--ttl", "soon"), 65, "duration")


def test_bad_input_is_one_line(scm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert scm("keys", "generate", "web").returncode == 0
    _fails(scm("keys", "generate", "web"), 73, "exists already")
    _fails(scm("keys", "delete", "nope"), 66, "no key labelled 'nope'")
    _fails(scm("keys", "list", SCM_PKCS11_PIN="wrong"), 78, "wrong PIN")
    _fails(scm("keys", "list", SCM_KEYS_PKCS11_MODULE="/nope/libp11sgx.so"), 69, "does not exist")
    _fails(
        scm(
            "keys",
            "list",
            SCM_KEYS_TOKEN_LABEL="other",
            SCM_KEYS_EMBEDDED_TOKEN="false",
            SCM_PKCS11_PIN="1234",
        ),
        69,
        "no token labelled 'other'",
    )
    (tmp_path / "bad.pem").write_text(
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    )
    _fails(scm("keys", "import", "x", "--key", str(tmp_path / "bad.pem")), 65, "not a valid PEM")
    _fails(scm("keys", "import", "x", "--key", str(tmp_path / "missing.pem")), 66, "does not exist")
    _fails(scm("ca", "show"), 66, "no CA")
    assert [k["label"] for k in json.loads(scm("keys", "list", "--format", "json").stdout)] == [
        "web"
    ]


def test_ca_issue_asks_the_configured_remote_ca(scm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    identity = WorkloadIdentity("example.org", "shop", "web")
    csr = tmp_path / "ok.csr"
    csr.write_bytes(csr_to_pem(build_csr(identity, ec.generate_private_key(ec.SECP256R1()))))
    (tmp_path / "token").write_text("istio-token")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    istio = {
        "SCM_CA_BACKEND": "istio",
        "SCM_ISTIO_CA_ADDRESS": f"127.0.0.1:{port}",
        "SCM_ISTIO_CA_ROOT_CERT_FILE": str(make_tls(tmp_path).ca),
        "SCM_ISTIO_CA_TOKEN_FILE": str(tmp_path / "token"),
        "SCM_ISTIO_CA_TIMEOUT_SECONDS": "5",
    }
    _fails(scm("ca", "issue", "--csr", str(csr), **istio), 69, f"127.0.0.1:{port} is unavailable")
    kubernetes = {"SCM_CA_BACKEND": "kubernetes", "SCM_KUBERNETES_CA_SIGNER_NAME": "x.io/y"}
    _fails(scm("ca", "issue", "--csr", str(csr), **kubernetes), 78, "trust_bundle_file is not set")


def test_ca_show_pem_prints_exactly_the_configured_roots(scm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # An intermediate under an operator's root: the root is what peers trust, not the chain.
    root = TestCA("operator root")
    (tmp_path / "root.pem").write_bytes(cert_pem(root.certificate))
    (tmp_path / "root-key.pem").write_bytes(key_pem(root.key))
    parent = (
        "--parent-cert",
        str(tmp_path / "root.pem"),
        "--parent-key",
        str(tmp_path / "root-key.pem"),
    )
    assert scm("ca", "init", "--trust-domain", "example.org", *parent).returncode == 0
    shown = scm("ca", "show", "--pem")
    assert x509.load_pem_x509_certificates(shown.stdout.encode()) == [root.certificate]
    # A remote backend: its trust bundle file, whatever the local CA is.
    roots = tmp_path / "mesh-roots.pem"
    roots.write_bytes(cert_pem(TestCA("a").certificate) + cert_pem(TestCA("b").certificate))
    istio = {
        "SCM_CA_BACKEND": "istio",
        "SCM_ISTIO_CA_ROOT_CERT_FILE": str(make_tls(tmp_path).ca),
        "SCM_ISTIO_CA_TRUST_BUNDLE_FILE": str(roots),
    }
    shown = scm("ca", "show", "--pem", **istio)
    assert shown.stdout.encode() == roots.read_bytes()
