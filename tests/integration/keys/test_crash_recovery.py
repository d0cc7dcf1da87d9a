"""kill -9 at every step boundary of the commands that change keys, token and CA state.

After each kill, the same command run again succeeds, and `scm keys list` shows no orphan
or staging object: the state directory never needs repair by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography import x509

from tests.crash_harness import kill_at, run_scm
from tests.tls import make_tls

TOKEN_POINTS = [
    "token.conf-written",
    "token.util-started",
    "token.initialised",
    "token.staged",
    "token.created",
]
KEY_POINTS = ["keys.generate.staged", "keys.commit.before-private"]
CA_POINTS = [
    *KEY_POINTS,
    "ca.key-staged",
    "ca.chain-stored",
    "ca.intent-written",
    "ca.key-committed",
]
IMPORT_POINTS = ["keys.import.private-created", "keys.import.staged", "keys.commit.before-private"]


def _ok(result) -> str:  # type: ignore[no-untyped-def]
    assert result.returncode == 0, result.stderr
    return str(result.stdout)


def _keys(state: Path) -> dict[str, dict[str, object]]:
    listed = json.loads(_ok(run_scm(state, "keys", "list", "--format", "json")))
    return {entry["label"]: entry for entry in listed}


def _assert_clean(state: Path) -> dict[str, dict[str, object]]:
    keys = _keys(state)
    leftovers = {k: v["state"] for k, v in keys.items() if v["state"] in ("orphan", "staging")}
    assert leftovers == {}
    assert not list(state.glob(".softhsm.tmp-*"))
    return keys


def _issue_and_verify(state: Path, tmp_path: Path) -> None:
    """A certificate issued now verifies against ca.pem."""
    _ok(run_scm(state, "keys", "generate", "workload"))
    csr = tmp_path / "w.csr"
    _ok(
        run_scm(
            state, "ca", "csr", "workload", "--namespace", "n", "--service-account", "s",
            "--output", str(csr),
        )
    )  # fmt: skip
    chain = x509.load_pem_x509_certificates(
        _ok(run_scm(state, "ca", "issue", "--csr", str(csr))).encode()
    )
    ca = x509.load_pem_x509_certificates((state / "ca" / "ca.pem").read_bytes())[0]
    chain[0].verify_directly_issued_by(ca)


@pytest.mark.parametrize("point", TOKEN_POINTS)
def test_token_creation_killed(point: str, tmp_path: Path) -> None:
    state = tmp_path / "state"
    kill_at(point, state, "keys", "list", work_dir=tmp_path)
    _ok(run_scm(state, "keys", "generate", "after"))
    assert set(_assert_clean(state)) == {"after"}


@pytest.mark.parametrize("key_type", ["ec-p256", "rsa-3072"])
@pytest.mark.parametrize("point", CA_POINTS)
def test_ca_init_killed(point: str, key_type: str, tmp_path: Path) -> None:
    state = tmp_path / "state"
    _ok(run_scm(state, "keys", "list"))  # the token exists; the kill is inside ca init
    kill_at(point, state, "ca", "init", "--key-type", key_type, work_dir=tmp_path)
    _ok(run_scm(state, "ca", "init", "--key-type", key_type))
    keys = _assert_clean(state)
    assert keys["scm-ca"]["type"] == key_type and keys["scm-ca"]["state"] == "in use"
    assert not (state / "ca" / ".init.json").exists()
    _issue_and_verify(state, tmp_path)


def test_ca_init_killed_after_ca_json_is_complete(tmp_path: Path) -> None:
    state = tmp_path / "state"
    kill_at("ca.json-written", state, "ca", "init", work_dir=tmp_path)
    again = run_scm(state, "ca", "init")
    assert again.returncode == 73 and "a CA exists already" in again.stderr
    assert not (state / "ca" / ".init.json").exists()
    _ok(run_scm(state, "ca", "show"))
    _assert_clean(state)
    _issue_and_verify(state, tmp_path)


@pytest.mark.parametrize("point", KEY_POINTS)
def test_keys_generate_killed(point: str, tmp_path: Path) -> None:
    state = tmp_path / "state"
    _ok(run_scm(state, "keys", "list"))
    kill_at(point, state, "keys", "generate", "web", work_dir=tmp_path)
    _ok(run_scm(state, "keys", "generate", "web"))
    keys = _assert_clean(state)
    assert list(keys) == ["web"]


@pytest.mark.parametrize("point", IMPORT_POINTS)
def test_keys_import_killed(point: str, tmp_path: Path) -> None:
    state = tmp_path / "state"
    _ok(run_scm(state, "keys", "list"))
    (tmp_path / "tls").mkdir()
    tls = make_tls(tmp_path / "tls", "gw.example.org")
    args = ("keys", "import", "gw", "--key", str(tls.key), "--cert", str(tls.cert))
    kill_at(point, state, *args, work_dir=tmp_path)
    _ok(run_scm(state, *args))
    keys = _assert_clean(state)
    assert list(keys) == ["gw"] and keys["gw"]["has_certificate"] is True


def test_keys_delete_killed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (tmp_path / "tls").mkdir()
    tls = make_tls(tmp_path / "tls", "gw.example.org")
    _ok(run_scm(state, "keys", "import", "gw", "--key", str(tls.key), "--cert", str(tls.cert)))
    kill_at("keys.delete.unlabelled", state, "keys", "delete", "gw", work_dir=tmp_path)
    assert "gw" not in _keys(state)  # gone for everyone at once
    _ok(run_scm(state, "keys", "import", "gw", "--key", str(tls.key)))
    keys = _assert_clean(state)
    # The old certificate went with the old key: the new one has none.
    assert list(keys) == ["gw"] and keys["gw"]["has_certificate"] is False
    assert run_scm(state, "keys", "list").stdout.count("gw") == 1
