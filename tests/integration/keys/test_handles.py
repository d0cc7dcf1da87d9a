"""A long-running process whose key another process deleted and re-imported keeps working.

A cached PKCS#11 handle becomes invalid once another process destroys the object; the
keystore drops it and looks the label up again instead of failing until restarted.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from scm.keys import KeyType, Pkcs11Keystore
from tests.crash_harness import run_scm
from tests.tls import make_tls


def test_key_replaced_by_another_process(
    token_keystore: Pkcs11Keystore, token_state_dir: Path, label: str, tmp_path: Path
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    old, new = make_tls(first, "gw.example.org"), make_tls(second, "gw.example.org")
    token_keystore.import_key(label, old.key.read_bytes())
    token_keystore.signer(label).sign(b"warm the handle cache", ec.ECDSA(hashes.SHA256()))

    for args in (["keys", "delete", label], ["keys", "import", label, "--key", str(new.key)]):
        result = run_scm(token_state_dir, *args)
        assert result.returncode == 0, result.stderr

    # Straight to signing: nothing else refreshed the cached handle first.
    signature = token_keystore.signer(label).sign(b"after", ec.ECDSA(hashes.SHA256()))
    new_public = x509.load_pem_x509_certificate(new.cert.read_bytes()).public_key()
    assert isinstance(new_public, ec.EllipticCurvePublicKey)
    new_public.verify(signature, b"after", ec.ECDSA(hashes.SHA256()))


def test_find_sees_a_delete_by_another_process(
    token_keystore: Pkcs11Keystore, token_state_dir: Path, label: str
) -> None:
    token_keystore.generate(label, KeyType.EC_P256)
    assert token_keystore.find(label) is not None
    result = run_scm(token_state_dir, "keys", "delete", label)
    assert result.returncode == 0, result.stderr
    assert token_keystore.find(label) is None
