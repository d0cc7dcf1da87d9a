"""What the SDS server hands out: named credentials and trust bundles.

These are the boundary with the issuance layer (``scm.keys`` and ``scm.pki``): whatever
issues or imports a certificate builds one of these values and puts it in the
:class:`~scm.sds.store.SecretStore`. A credential's private key is either inline PEM
(software key mode, for stock Envoy) or a reference to a key that stays in a token
(hsm key mode, for an Envoy with a private key provider).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from scm.errors import InputError

ROOTCA = "ROOTCA"
DEFAULT = "default"


@dataclass(frozen=True)
class InlineKey:
    """A private key sent to Envoy inside the Secret (software key mode)."""

    pem: bytes = field(repr=False)

    @property
    def location(self) -> str:
        return "inline"


@dataclass(frozen=True)
class HsmKey:
    """A key that never leaves its token; Envoy's private key provider signs with it."""

    key_label: str
    token_label: str
    key_type: str  # scm.keys.KeyType value: "ec-p256", "ec-p384", "rsa-2048", ...

    @property
    def location(self) -> str:
        return f"hsm:{self.token_label}/{self.key_label}"


PrivateKeyRef = InlineKey | HsmKey


@dataclass(frozen=True)
class Credential:
    """A certificate chain (leaf first) and where its private key is."""

    chain: tuple[x509.Certificate, ...]
    key: PrivateKeyRef

    def __post_init__(self) -> None:
        if not self.chain:
            raise InputError("a credential needs at least its leaf certificate")

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]

    @property
    def not_after(self) -> datetime.datetime:
        return self.leaf.not_valid_after_utc

    def chain_pem(self) -> bytes:
        return certificates_pem(self.chain)


@dataclass(frozen=True)
class TrustBundle:
    """The CA certificates a peer's certificate must chain to (served as ``ROOTCA``)."""

    certificates: tuple[x509.Certificate, ...]

    def __post_init__(self) -> None:
        if not self.certificates:
            raise InputError("a trust bundle needs at least one CA certificate")

    @property
    def not_after(self) -> datetime.datetime:
        return min(c.not_valid_after_utc for c in self.certificates)

    def pem(self) -> bytes:
        return certificates_pem(self.certificates)


SecretValue = Credential | TrustBundle


def certificates_pem(certificates: Sequence[x509.Certificate]) -> bytes:
    """Concatenated PEM of ``certificates``, in order."""
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)
