"""A small certificate authority for tests: a self-signed root that issues leaves.

Made with ``cryptography`` directly; the project's own CA lives in scm.pki.
"""

from __future__ import annotations

import datetime
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from scm.sds.credentials import Credential, InlineKey, TrustBundle


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class TestCA:
    """A root CA with an EC P-256 key."""

    __test__ = False  # not a pytest test class

    def __init__(self, common_name: str = "scm test root") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(_name(common_name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )

    def bundle(self) -> TrustBundle:
        return TrustBundle((self.certificate,))

    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def issue(
        self, common_name: str = "localhost", hours: float = 1.0
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """A leaf for ``common_name`` (a DNS name or an IP; also valid for localhost and
        127.0.0.1)."""
        key = ec.generate_private_key(ec.SECP256R1())
        try:
            own: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(common_name))
        except ValueError:
            own = x509.DNSName(common_name)
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=hours))
            .add_extension(
                x509.SubjectAlternativeName(
                    list(
                        dict.fromkeys(
                            [
                                own,
                                x509.DNSName("localhost"),
                                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                            ]
                        )
                    )
                ),
                critical=False,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        return certificate, key

    def credential(self, common_name: str = "localhost") -> Credential:
        """A leaf issued by this CA with its key inline (software key mode)."""
        certificate, key = self.issue(common_name)
        return Credential((certificate,), InlineKey(key_pem(key)))


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def cert_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)
