"""What every keystore speaks: key types, what is known about a key, and the Keystore protocol."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from cryptography.hazmat.primitives.asymmetric import ec, rsa

#: What :meth:`Keystore.signer` returns: a ``cryptography`` private key.
Signer = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class KeyType(enum.Enum):
    """Key pair types scm creates and imports."""

    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    RSA_4096 = "rsa-4096"

    @property
    def is_ec(self) -> bool:
        return self.value.startswith("ec-")

    @property
    def bits(self) -> int:
        """Curve size or RSA modulus size."""
        return {"ec-p256": 256, "ec-p384": 384}.get(self.value) or int(self.value[4:])

    @classmethod
    def of_public_key(cls, public_key: object) -> KeyType | None:
        """The type of a ``cryptography`` public key, or None when scm does not handle it."""
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            return {"secp256r1": cls.EC_P256, "secp384r1": cls.EC_P384}.get(public_key.curve.name)
        if isinstance(public_key, rsa.RSAPublicKey):
            try:
                return cls(f"rsa-{public_key.key_size}")
            except ValueError:
                return None
        return None


@dataclass(frozen=True)
class KeyInfo:
    """A key as read back from its store (the token's own attributes for PKCS#11)."""

    label: str
    key_type: KeyType
    key_id: str
    sensitive: bool
    extractable: bool
    never_extractable: bool
    has_certificate: bool
    location: str

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form, as ``scm keys list --format json`` prints it."""
        return {
            "label": self.label,
            "type": self.key_type.value,
            "id": self.key_id,
            "sensitive": self.sensitive,
            "extractable": self.extractable,
            "never_extractable": self.never_extractable,
            "has_certificate": self.has_certificate,
            "location": self.location,
        }


@runtime_checkable
class Keystore(Protocol):
    """Where private keys live. Every method is synchronous and safe to call from any thread."""

    def generate(self, label: str, key_type: KeyType) -> KeyInfo:
        """Create a key pair named ``label``; ConflictError if the label is taken."""
        ...

    def find(self, label: str) -> KeyInfo | None:
        """The key named ``label``, or None."""
        ...

    def list(self) -> list[KeyInfo]:
        """Every key, sorted by label."""
        ...

    def delete(self, label: str) -> None:
        """Remove the key, its public half and its certificate; NotFoundError if absent."""
        ...

    def import_key(self, label: str, key_pem: bytes, cert_pem: bytes | None = None) -> KeyInfo:
        """Bring an existing PEM private key (and certificate chain) into the store."""
        ...

    def rename(self, label: str, new_label: str) -> KeyInfo:
        """Give the key ``label`` (with its certificate) the free label ``new_label``."""
        ...

    def signer(self, label: str) -> Signer:
        """A ``cryptography`` private key whose signatures are made by the store."""
        ...

    def store_certificate(self, label: str, chain_pem: bytes) -> None:
        """Keep the certificate chain (leaf first) for the key ``label``."""
        ...

    def certificate(self, label: str) -> bytes | None:
        """The stored chain as PEM, or None."""
        ...

    def close(self) -> None:
        """Release the store; further calls fail."""
        ...
