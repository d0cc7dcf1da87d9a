"""The in-memory keystore behind the same interface, for stock Envoy's inline keys."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from scm.keys import (
    KeyExistsError,
    KeyFormatError,
    KeyNotFoundError,
    Keystore,
    KeyType,
    SoftwareKeystore,
)


def test_generate_sign_and_hand_out_pem() -> None:
    store = SoftwareKeystore()
    assert isinstance(store, Keystore)
    info = store.generate("web", KeyType.EC_P384)
    assert (info.location, info.extractable, info.sensitive) == ("memory", True, False)
    signer = store.signer("web")
    signature = signer.sign(b"data", ec.ECDSA(hashes.SHA384()))
    loaded = serialization.load_pem_private_key(store.private_key_pem("web"), password=None)
    loaded.public_key().verify(signature, b"data", ec.ECDSA(hashes.SHA384()))  # type: ignore[call-arg,arg-type,union-attr]
    with pytest.raises(KeyExistsError):
        store.generate("web", KeyType.EC_P256)
    store.delete("web")
    assert store.list() == []
    with pytest.raises(KeyNotFoundError):
        store.private_key_pem("web")


def test_import_checks_the_certificate_and_keeps_it() -> None:
    store = SoftwareKeystore()
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(KeyFormatError, match="not a valid PEM certificate"):
        store.import_key("gw", pem, b"garbage")
    assert store.find("gw") is None
    store.import_key("gw", pem)
    assert store.certificate("gw") is None
