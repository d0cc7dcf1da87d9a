"""The one interface every certificate authority offers, and what it returns."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from scm.errors import ConfigError
from scm.pki.errors import CAUnavailableError, CertificateRequestError
from scm.pki.svid import LEAF_USAGES, check_svid


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate and the chain that vouches for it, leaf first."""

    chain: list[x509.Certificate]

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]

    @property
    def not_after(self) -> datetime.datetime:
        return self.chain[0].not_valid_after_utc

    def chain_pem(self) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain)


@runtime_checkable
class CertificateAuthority(Protocol):
    """Something that signs CSRs: the local CA, the Kubernetes CSR API, Istio's CA."""

    async def sign(
        self, csr: x509.CertificateSigningRequest, ttl: datetime.timedelta
    ) -> IssuedCertificate:
        """Issue a certificate for ``csr`` valid for at most ``ttl``."""
        ...

    def trust_bundle(self) -> list[x509.Certificate]:
        """The root certificates that verify what this CA issues."""
        ...


def csr_to_pem(csr: x509.CertificateSigningRequest) -> bytes:
    return csr.public_bytes(serialization.Encoding.PEM)


def load_csr(pem: bytes) -> x509.CertificateSigningRequest:
    """Parse a PEM CSR; a one-line error when it is not one."""
    try:
        return x509.load_pem_x509_csr(pem)
    except ValueError:
        raise CertificateRequestError("the CSR is not a valid PEM certificate request") from None


def parse_chain(pem: str | bytes, source: str) -> list[x509.Certificate]:
    """PEM certificates a remote CA (``source``) returned, leaf first."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        chain = x509.load_pem_x509_certificates(data)
    except (ValueError, x509.InvalidVersion):
        raise CAUnavailableError(f"{source} returned no valid PEM certificate") from None
    return chain


def check_issued(
    chain: list[x509.Certificate],
    csr: x509.CertificateSigningRequest,
    source: str,
    bundle: list[x509.Certificate],
    required_usages: frozenset[x509.ObjectIdentifier] = LEAF_USAGES,
) -> IssuedCertificate:
    """The chain a remote CA (``source``) returned, once it is the SVID the CSR asked for.

    It must verify to ``bundle``, certify the CSR's key and name exactly the CSR's SPIFFE
    ID, with no SAN the CSR did not ask for; InvalidSvidError otherwise.
    """
    try:
        sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise CertificateRequestError("the CSR names no identity (no SAN)") from None
    uris = sans.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) != 1:
        raise CertificateRequestError("the CSR must name exactly one SPIFFE ID")
    check_svid(
        chain,
        bundle,
        expected_spiffe_id=uris[0],
        expected_key=csr.public_key(),
        allowed_dns=sans.get_values_for_type(x509.DNSName),
        required_usages=required_usages,
        source=source,
    )
    return IssuedCertificate(chain)


def load_trust_bundle(path: Path, setting: str) -> list[x509.Certificate]:
    """The PEM root certificates in ``path``, named in errors by the ``setting`` giving it."""
    try:
        return x509.load_pem_x509_certificates(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read {setting} {path}: {exc.strerror}") from None
    except (ValueError, x509.InvalidVersion):
        raise ConfigError(f"{setting} {path} holds no valid PEM certificate") from None
