"""The PKCS#11 keystore against a real SoftHSM2 token."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pkcs11
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from scm.keys import (
    KeyExistsError,
    KeyFormatError,
    KeyNotFoundError,
    KeyType,
    Pkcs11Keystore,
    TokenUnavailableError,
    staging,
)
from scm.keys.settings import SOFTHSM2_MODULE
from scm.keys.token_lock import pkcs11_lock
from tests.keystores import RawToken

A = pkcs11.Attribute


def _pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _self_signed(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    import datetime

    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "gateway")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize("key_type", list(KeyType), ids=lambda t: t.value)
def test_generated_keys_are_sensitive_and_never_extractable_in_the_token(
    token_keystore: Pkcs11Keystore, raw_token: RawToken, label: str, key_type: KeyType
) -> None:
    info = token_keystore.generate(label, key_type)
    assert (info.label, info.key_type, info.location) == (label, key_type, "pkcs11:scm")
    key = raw_token.private_key(label)
    attrs = raw_token.run(
        lambda _: key.get_attributes(
            [A.SENSITIVE, A.EXTRACTABLE, A.NEVER_EXTRACTABLE, A.TOKEN, A.ID]
        )
    )
    assert attrs[A.SENSITIVE] and attrs[A.TOKEN] and attrs[A.NEVER_EXTRACTABLE]
    assert not attrs[A.EXTRACTABLE]
    assert attrs[A.ID].hex() == info.key_id
    assert (info.sensitive, info.extractable, info.never_extractable) == (True, False, True)
    secret = A.VALUE if key_type.is_ec else A.PRIVATE_EXPONENT
    with pytest.raises(pkcs11.AttributeSensitive):
        raw_token.run(lambda _: key[secret])
    signer = token_keystore.signer(label)
    with pytest.raises(KeyFormatError):
        signer.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


@pytest.mark.parametrize("key_type", [KeyType.EC_P256, KeyType.EC_P384, KeyType.RSA_2048])
def test_csr_and_certificate_signed_in_the_token_verify(
    token_keystore: Pkcs11Keystore, label: str, key_type: KeyType
) -> None:
    token_keystore.generate(label, key_type)
    signer = token_keystore.signer(label)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, label)]))
        .sign(signer, hashes.SHA256())
    )
    assert csr.is_signature_valid
    cert = x509.load_pem_x509_certificate(_self_signed(signer))
    cert.verify_directly_issued_by(cert)
    assert cert.public_key() == signer.public_key()


def test_rsa_pss_and_pkcs1_signatures_verify(token_keystore: Pkcs11Keystore, label: str) -> None:
    token_keystore.generate(label, KeyType.RSA_2048)
    signer = token_keystore.signer(label)
    assert isinstance(signer, rsa.RSAPrivateKey)
    for pad in (
        padding.PKCS1v15(),
        padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH),
        padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.MAX_LENGTH),
        padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.AUTO),
        padding.PSS(padding.MGF1(hashes.SHA256()), 20),
    ):
        signature = signer.sign(b"message", pad, hashes.SHA256())
        verify_pad = padding.PSS(pad.mgf, padding.PSS.AUTO) if isinstance(pad, padding.PSS) else pad
        signer.public_key().verify(signature, b"message", verify_pad, hashes.SHA256())
    digest = hashes.Hash(hashes.SHA384())
    digest.update(b"message")
    prehashed = signer.sign(digest.finalize(), padding.PKCS1v15(), Prehashed(hashes.SHA384()))
    signer.public_key().verify(prehashed, b"message", padding.PKCS1v15(), hashes.SHA384())
    with pytest.raises(TypeError, match="MGF1 with the signature's hash"):
        signer.sign(b"m", padding.PSS(padding.MGF1(hashes.SHA384()), 32), hashes.SHA256())


def test_imported_key_is_sensitive_signs_and_is_written_nowhere(
    token_keystore: Pkcs11Keystore, raw_token: RawToken, token_state_dir: Path, label: str
) -> None:
    original = ec.generate_private_key(ec.SECP256R1())
    key_pem, cert_pem = _pem(original), _self_signed(original)
    info = token_keystore.import_key(label, key_pem, cert_pem)
    assert (info.sensitive, info.extractable, info.has_certificate) == (True, False, True)
    key = raw_token.private_key(label)
    assert raw_token.run(lambda _: key[A.SENSITIVE]) is True
    assert raw_token.run(lambda _: key[A.EXTRACTABLE]) is False
    with pytest.raises(pkcs11.AttributeSensitive):
        raw_token.run(lambda _: key[A.VALUE])
    signature = token_keystore.signer(label).sign(b"data", ec.ECDSA(hashes.SHA256()))
    original.public_key().verify(signature, b"data", ec.ECDSA(hashes.SHA256()))
    assert token_keystore.certificate(label) == cert_pem
    scalar = original.private_numbers().private_value.to_bytes(32, "big")
    der = original.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pem_body = key_pem.splitlines()[1]
    for path in token_state_dir.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert scalar not in content and der not in content and pem_body not in content


def test_imported_rsa_key_signs(token_keystore: Pkcs11Keystore, label: str) -> None:
    original = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    info = token_keystore.import_key(label, _pem(original))
    assert info.key_type is KeyType.RSA_2048
    pad = padding.PKCS1v15()
    signature = token_keystore.signer(label).sign(b"data", pad, hashes.SHA256())
    original.public_key().verify(signature, b"data", pad, hashes.SHA256())


@pytest.mark.parametrize(
    ("key_pem", "message"),
    [
        (b"not a key", "not a valid PEM private key"),
        (
            ec.generate_private_key(ec.SECP256R1()).private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"secret"),
            ),
            "encrypted",
        ),
        (_pem(ec.generate_private_key(ec.SECP521R1())), "unsupported private key"),
    ],
    ids=["malformed", "encrypted", "p521"],
)
def test_bad_import_fails_cleanly_and_leaves_nothing(
    token_keystore: Pkcs11Keystore, raw_token: RawToken, label: str, key_pem: bytes, message: str
) -> None:
    with pytest.raises(KeyFormatError, match=message):
        token_keystore.import_key(label, key_pem)
    assert raw_token.objects(label=label) == []


def test_certificate_for_another_key_is_refused_before_anything_is_created(
    token_keystore: Pkcs11Keystore, raw_token: RawToken, label: str
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    other = _self_signed(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(KeyFormatError, match="does not match"):
        token_keystore.import_key(label, _pem(key), other)
    assert raw_token.objects(label=label) == []


def test_taken_label_is_refused_without_new_objects(
    token_keystore: Pkcs11Keystore, raw_token: RawToken, label: str
) -> None:
    token_keystore.generate(label, KeyType.EC_P256)
    before = raw_token.objects(label=label)
    with pytest.raises(KeyExistsError):
        token_keystore.generate(label, KeyType.EC_P256)
    with pytest.raises(KeyExistsError):
        token_keystore.import_key(label, _pem(ec.generate_private_key(ec.SECP256R1())))
    assert raw_token.objects(label=label) == before


def test_list_find_delete(token_keystore: Pkcs11Keystore, raw_token: RawToken, label: str) -> None:
    token_keystore.generate(label, KeyType.EC_P256)
    token_keystore.store_certificate(label, _self_signed(token_keystore.signer(label)))
    assert label in [info.label for info in token_keystore.list()]
    found = token_keystore.find(label)
    assert found is not None and found.has_certificate
    assert len(raw_token.objects(label=label)) == 4  # private, public, certificate, chain
    token_keystore.delete(label)
    assert token_keystore.find(label) is None
    assert raw_token.objects(label=label) == []
    with pytest.raises(KeyNotFoundError):
        token_keystore.delete(label)
    with pytest.raises(KeyNotFoundError):
        token_keystore.signer(label)


def test_concurrent_use_from_many_coroutines_and_threads(
    token_keystore: Pkcs11Keystore, label: str
) -> None:
    """Coroutines and plain threads sign with EC and RSA keys and list keys all at once."""
    token_keystore.generate(label, KeyType.EC_P256)
    token_keystore.generate(label + "-rsa", KeyType.RSA_2048)
    ec_key = token_keystore.signer(label)
    rsa_key = token_keystore.signer(label + "-rsa")
    assert isinstance(ec_key, ec.EllipticCurvePrivateKey)
    assert isinstance(rsa_key, rsa.RSAPrivateKey)
    ecdsa = ec.ECDSA(hashes.SHA256())
    pkcs1 = (padding.PKCS1v15(), hashes.SHA256())
    messages = [f"message {i}".encode() for i in range(200)]

    def thread_work(index: int) -> list[bytes]:
        token_keystore.list()
        return [rsa_key.sign(f"thread {index} {i}".encode(), *pkcs1) for i in range(5)]

    async def sign_all() -> tuple[list[bytes], list[list[bytes]]]:
        with ThreadPoolExecutor(8) as threads:
            loop = asyncio.get_running_loop()
            by_threads = [loop.run_in_executor(threads, thread_work, i) for i in range(8)]
            by_coroutines = await asyncio.gather(
                *(asyncio.to_thread(ec_key.sign, m, ecdsa) for m in messages)
            )
            return by_coroutines, list(await asyncio.gather(*by_threads))

    ec_signatures, rsa_signatures = asyncio.run(sign_all())
    for message, signature in zip(messages, ec_signatures, strict=True):
        ec_key.public_key().verify(signature, message, ecdsa)
    for index, signatures in enumerate(rsa_signatures):
        for i, signature in enumerate(signatures):
            rsa_key.public_key().verify(signature, f"thread {index} {i}".encode(), *pkcs1)


def test_lost_session_is_reopened(token_keystore: Pkcs11Keystore, label: str) -> None:
    token_keystore.generate(label, KeyType.EC_P256)
    signer = token_keystore.signer(label)
    session = token_keystore._token._session
    assert session is not None
    pkcs11_lock().run(session.close)  # as if the token had dropped it
    signature = signer.sign(b"after", ec.ECDSA(hashes.SHA256()))
    signer.public_key().verify(signature, b"after", ec.ECDSA(hashes.SHA256()))


def test_missing_token_and_missing_module(
    token_keystore: Pkcs11Keystore, token_state_dir: Path
) -> None:
    # A wrong PIN is tested through the CLI: this process is logged in to the token already.
    conf = token_state_dir / "softhsm" / "softhsm2.conf"
    with pytest.raises(TokenUnavailableError, match="no token labelled 'absent'"):
        Pkcs11Keystore(SOFTHSM2_MODULE, "absent", "1234", conf)
    with pytest.raises(TokenUnavailableError, match="does not exist"):
        Pkcs11Keystore("/nonexistent/libp11sgx.so", "scm", "1234")


def test_sweep_removes_staging_keys_older_than_a_minute_only(
    token_keystore: Pkcs11Keystore,
) -> None:
    """Staging labels of this (live) process: only the age makes one abandoned."""
    old = staging.new_label(clock=lambda: time.time() - 2 * staging.MAX_AGE)
    young = staging.new_label()
    token_keystore.generate(old, KeyType.EC_P256)
    token_keystore.generate(young, KeyType.EC_P256)
    removed = token_keystore.sweep()
    assert old in removed and young not in removed
    assert token_keystore.find(old) is None and token_keystore.find(young) is not None
    token_keystore.delete(young)


def test_sweep_judges_age_by_the_keystores_clock(
    token_keystore: Pkcs11Keystore, token_state_dir: Path
) -> None:
    young = staging.new_label()
    token_keystore.generate(young, KeyType.EC_P256)
    conf = token_state_dir / "softhsm" / "softhsm2.conf"
    pin = (token_state_dir / "softhsm" / "user.pin").read_text().strip()
    later = Pkcs11Keystore(
        SOFTHSM2_MODULE, "scm", pin, conf, clock=lambda: time.time() + 2 * staging.MAX_AGE
    )
    try:
        assert young in later.sweep()
    finally:
        later.close()
    assert token_keystore.find(young) is None
