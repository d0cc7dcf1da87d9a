"""A keystore in process memory, for stock Envoy that needs its private key inline.

Keys exist only in this process: nothing is written to disk, and they are gone when the
process ends. ``private_key_pem`` hands a key out for an inline SDS secret.
"""

from __future__ import annotations

import builtins
import secrets
import threading
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from scm.keys.errors import KeyExistsError, KeyFormatError, KeyNotFoundError
from scm.keys.model import KeyInfo, KeyType, Signer
from scm.keys.pem import (
    chain_to_pem,
    check_certificate_matches,
    load_certificate_chain,
    load_private_key,
)

_CURVES: dict[KeyType, ec.EllipticCurve] = {
    KeyType.EC_P256: ec.SECP256R1(),
    KeyType.EC_P384: ec.SECP384R1(),
}


@dataclass
class _Entry:
    key: Signer
    key_type: KeyType
    key_id: str
    chain_pem: bytes | None = None


class SoftwareKeystore:
    """Keys held by ``cryptography`` in memory, behind the same interface as a token."""

    location = "memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    def generate(self, label: str, key_type: KeyType) -> KeyInfo:
        key: Signer
        if key_type.is_ec:
            key = ec.generate_private_key(_CURVES[key_type])
        else:
            key = rsa.generate_private_key(public_exponent=65537, key_size=key_type.bits)
        return self._add(label, _Entry(key, key_type, secrets.token_hex(8)))

    def import_key(self, label: str, key_pem: bytes, cert_pem: bytes | None = None) -> KeyInfo:
        key, key_type = load_private_key(key_pem)
        chain_pem = None
        if cert_pem is not None:
            chain = load_certificate_chain(cert_pem)
            check_certificate_matches(chain, key.public_key())
            chain_pem = chain_to_pem(chain)
        return self._add(label, _Entry(key, key_type, secrets.token_hex(8), chain_pem))

    def find(self, label: str) -> KeyInfo | None:
        with self._lock:
            entry = self._entries.get(label)
            return None if entry is None else self._info(label, entry)

    def list(self) -> builtins.list[KeyInfo]:
        with self._lock:
            return [self._info(label, e) for label, e in sorted(self._entries.items())]

    def delete(self, label: str) -> None:
        with self._lock:
            self._get(label)
            del self._entries[label]

    def rename(self, label: str, new_label: str) -> KeyInfo:
        if not new_label or not new_label.isprintable():
            raise KeyFormatError("a key label must be printable and not empty")
        with self._lock:
            entry = self._get(label)
            if new_label in self._entries:
                raise KeyExistsError(f"a key labelled {new_label!r} exists already in memory")
            self._entries[new_label] = self._entries.pop(label)
            return self._info(new_label, entry)

    def signer(self, label: str) -> Signer:
        with self._lock:
            return self._get(label).key

    def private_key_pem(self, label: str) -> bytes:
        """The key as unencrypted PKCS#8 PEM, for Envoy's inline ``private_key``."""
        with self._lock:
            key = self._get(label).key
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def store_certificate(self, label: str, chain_pem: bytes) -> None:
        chain = load_certificate_chain(chain_pem)
        with self._lock:
            entry = self._get(label)
            check_certificate_matches(chain, entry.key.public_key())
            entry.chain_pem = chain_to_pem(chain)

    def certificate(self, label: str) -> bytes | None:
        with self._lock:
            return self._get(label).chain_pem

    def close(self) -> None:
        with self._lock:
            self._entries.clear()

    def _add(self, label: str, entry: _Entry) -> KeyInfo:
        if not label or not label.isprintable():
            raise KeyFormatError("a key label must be printable and not empty")
        with self._lock:
            if label in self._entries:
                raise KeyExistsError(f"a key labelled {label!r} exists already in memory")
            self._entries[label] = entry
            return self._info(label, entry)

    def _get(self, label: str) -> _Entry:
        entry = self._entries.get(label)
        if entry is None:
            raise KeyNotFoundError(f"no key labelled {label!r} in memory")
        return entry

    def _info(self, label: str, entry: _Entry) -> KeyInfo:
        return KeyInfo(
            label=label,
            key_type=entry.key_type,
            key_id=entry.key_id,
            sensitive=False,
            extractable=True,
            never_extractable=False,
            has_certificate=entry.chain_pem is not None,
            location=self.location,
        )
