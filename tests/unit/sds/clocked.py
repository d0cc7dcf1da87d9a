"""A clock tests drive, and a CA that follows it, for issuance and renewal without sleeping."""

from __future__ import annotations

import asyncio
import datetime
import random
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from scm.keys import SoftwareKeystore
from scm.pki import IssuedCertificate, WorkloadIdentity
from scm.sds.issuer import CertificateIssuer, IssuancePolicy
from scm.sds.leafkeys import SOFTWARE, LeafKeys
from scm.sds.records import CredentialRecords

WORKLOAD = WorkloadIdentity("cluster.local", "shop", "frontend", ("localhost",))
START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


class FakeClock:
    """Time that moves only when the code under test sleeps and the test allows it.

    Each ``sleep`` is recorded in ``requested``; it returns (having advanced ``now`` by
    its length) only while the test has granted sleeps with :meth:`allow`. ``parked`` is
    set while the code under test waits for a grant.
    """

    def __init__(self, start: datetime.datetime = START) -> None:
        self.moment = start
        self.requested: list[float] = []
        self.parked = asyncio.Event()
        self._grants = 0
        self._waiting: asyncio.Future[None] | None = None

    def now(self) -> datetime.datetime:
        return self.moment

    async def sleep(self, seconds: float) -> None:
        self.requested.append(seconds)
        while self._grants == 0:
            self._waiting = asyncio.get_running_loop().create_future()
            self.parked.set()
            await self._waiting
        self._grants -= 1
        self.moment += datetime.timedelta(seconds=seconds)

    async def allow(self, sleeps: int = 1, timeout: float = 30.0) -> None:
        """Let ``sleeps`` sleeps pass, then wait until the code under test parks again."""
        self.parked.clear()
        self._grants += sleeps
        if self._waiting is not None and not self._waiting.done():
            self._waiting.set_result(None)
        await asyncio.wait_for(self.parked.wait(), timeout)

    async def parked_now(self, timeout: float = 30.0) -> None:
        await asyncio.wait_for(self.parked.wait(), timeout)


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


class ClockCA:
    """An in-memory root CA signing leaves valid from the fake clock's now."""

    def __init__(self, clock: FakeClock, name: str = "clock root") -> None:
        self.clock = clock
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.down: Exception | None = None
        ski = x509.SubjectKeyIdentifier.from_public_key(self.key.public_key())
        now = clock.now()
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.signed = 0

    async def sign(
        self, csr: x509.CertificateSigningRequest, ttl: datetime.timedelta
    ) -> IssuedCertificate:
        if self.down is not None:
            raise self.down
        sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        now = self.clock.now()
        ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        leaf = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(self.certificate.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + ttl)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(sans, critical=len(csr.subject) == 0)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        self.signed += 1
        return IssuedCertificate([leaf, self.certificate])

    def trust_bundle(self) -> list[x509.Certificate]:
        return [self.certificate]


def clocked_issuer(
    state_dir: Path,
    ca: ClockCA,
    clock: FakeClock,
    identity: WorkloadIdentity = WORKLOAD,
    ttl: datetime.timedelta = datetime.timedelta(hours=24),
    jitter_ratio: float = 0.0,
    keystore: SoftwareKeystore | None = None,
    rng: random.Random | None = None,
) -> CertificateIssuer:
    """A software-mode issuer on ``clock`` over ``ca`` and records under ``state_dir``."""
    keys = LeafKeys(keystore or SoftwareKeystore(), SOFTWARE)
    policy = IssuancePolicy(ttl=ttl, grace_ratio=0.5, jitter_ratio=jitter_ratio)
    records = CredentialRecords(state_dir / "sds")
    return CertificateIssuer(ca, keys, identity, records, policy, clock=clock, rng=rng)
