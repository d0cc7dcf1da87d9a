"""What users get wrong, across commands: one line on stderr, the right exit status, no traceback.

Each case runs the installed ``scm`` with its own state directory. Placeholders in the
arguments: ``{tmp}`` is the test's temporary directory, ``{fixtures}`` tests/fixtures.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from tests.tls import make_tls

FIXTURES = Path(__file__).parents[2] / "fixtures"
QUOTE = "{fixtures}/attestation/quotes/tdx_v4_uptodate.quote.bin"
COLLATERAL = "{fixtures}/attestation/collateral/tdx_v4_uptodate.collateral.json"
SCM = shutil.which("scm", path=str(Path(sys.executable).parent)) or "scm"
NOT_UTF8 = b"\xff\xfe\x95 not text \x00"


def run_scm(tmp: Path, args: tuple[str, ...], env: dict[str, str] | None = None):
    full_env = {
        **{k: v for k, v in os.environ.items() if k != "SCM_CONFIG"},
        "SCM_STATE_DIR": str(tmp / "state"),
        **(env or {}),
    }
    argv = [a.format(tmp=tmp, fixtures=FIXTURES) for a in args]
    return subprocess.run(
        [SCM, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=full_env,
        stdin=subprocess.DEVNULL,
    )


def assert_one_line_error(
    result: subprocess.CompletedProcess[str], code: int, message: str
) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("scm: error: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    (tmp_path / "not-utf8").write_bytes(NOT_UTF8)
    return tmp_path


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        # A user-named output file that cannot be created: not a traceback.
        (("inspect", "--output", "/proc/scm-cannot-be-here"), 65, "cannot write output file"),
        (("inspect", "--output", "{tmp}/missing/report"), 66, "directory {tmp}/missing does not"),
        # attest: numbers, policies and URLs a user mistypes.
        (
            ("attest", "verify", QUOTE, "--collateral", COLLATERAL, "--policy", "{tmp}/not-utf8"),
            78,
            "is not a TOML text file",
        ),
        (("attest", "verify", QUOTE, "--pccs-url", "pccs.example"), 78, "must be an http://"),
        (("attest", "verify", QUOTE, "--pccs-url", "https://[::1"), 78, "is not a valid URL"),
        # openstack: libvirt's own error printing on stderr is silenced.
        (
            ("openstack", "check-host", "--libvirt-uri", "qemu+unix:///x?socket={tmp}/no"),
            69,
            "libvirt",
        ),
        # ca: durations and trust domains.
        (
            ("ca", "issue", "--csr", "{tmp}/never-read.csr", "--ttl", "99999999999999999999d"),
            65,
            "is too long",
        ),
        (("ca", "init", "--trust-domain", ""), 65, "invalid trust domain ''"),
    ],
)
def test_bad_input(tmp: Path, args: tuple[str, ...], code: int, message: str) -> None:
    assert_one_line_error(run_scm(tmp, args), code, message.format(tmp=tmp))


@pytest.mark.parametrize(
    ("env", "args", "code", "message"),
    [
        (
            {"SCM_ATTESTATION_PCCS_TIMEOUT_SECONDS": "nan"},
            ("attest", "verify", QUOTE, "--pccs-url", "http://127.0.0.1:9"),
            78,
            "attestation.pccs_timeout_seconds must be between 0 and 3600",
        ),
        ({"SCM_CA_KEY_TYPE": "dsa"}, ("ca", "init"), 78, "ca.key_type 'dsa' is not one of"),
        ({"SCM_CA_MAX_TTL": "forever"}, ("ca", "show"), 78, "ca.max_ttl: invalid duration"),
        (
            {"SCM_CA_DNS_SUFFIXES": "svc.cluster.local, *.example.org"},
            ("ca", "show"),
            78,
            "ca.dns_suffixes: '*.example.org' is not a DNS name",
        ),
        # kube: values that would spin the loops or cannot be bound.
        (
            {"SCM_KUBE_POLL_INTERVAL": "-1"},
            ("kube", "device-plugin", "--root", "{tmp}"),
            78,
            "kube.poll_interval must be over 0",
        ),
        (
            {"SCM_KUBE_WEBHOOK_PORT": "99999"},
            ("kube", "webhook", "--tls-cert", "{tmp}/c", "--tls-key", "{tmp}/k"),
            78,
            "kube.webhook_port must be 0 to 65535",
        ),
        # keys: settings and PIN files of a token the user configured.
        ({"SCM_KEYS_TOKEN_LABEL": ""}, ("keys", "list"), 78, "keys.token_label must not be empty"),
        (
            {"SCM_KEYS_EMBEDDED_TOKEN": "false", "SCM_KEYS_PIN_FILE": "{tmp}/not-utf8"},
            ("keys", "list"),
            78,
            "the PIN file {tmp}/not-utf8 is not text",
        ),
        (
            {"SCM_CONFIG": "{tmp}/not-utf8"},
            ("inspect",),
            78,
            "config file {tmp}/not-utf8 is not a UTF-8 text file",
        ),
    ],
)
def test_bad_settings(
    tmp: Path, env: dict[str, str], args: tuple[str, ...], code: int, message: str
) -> None:
    env = {name: value.format(tmp=tmp) for name, value in env.items()}
    assert_one_line_error(run_scm(tmp, args, env), code, message.format(tmp=tmp))


def test_verify_at_a_time_past_year_9999_is_a_usage_error(tmp: Path) -> None:
    result = run_scm(
        tmp, ("attest", "verify", QUOTE, "--collateral", COLLATERAL, "--at", "99999999999999")
    )
    assert result.returncode == 64 and "Traceback" not in result.stderr
    assert "--at" in result.stderr.splitlines()[-1]


def test_webhook_with_an_encrypted_key_fails_instead_of_prompting(tmp: Path) -> None:
    files = make_tls(tmp)
    key = serialization.load_pem_private_key(files.key.read_bytes(), None)
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    args = ("kube", "webhook", "--tls-cert", str(files.cert), "--tls-key", str(files.key))
    assert_one_line_error(run_scm(tmp, args), 65, "is encrypted: give the webhook an unencrypted")


def test_check_host_reads_a_domcaps_file_that_is_not_text_as_unusable(tmp: Path) -> None:
    result = run_scm(tmp, ("openstack", "check-host", "--domcaps", "{tmp}/not-utf8"))
    assert result.returncode == 0 and result.stderr == ""
