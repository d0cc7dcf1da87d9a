"""Issuance: the store's :class:`~scm.sds.store.CredentialProvider` backed by a CA.

- ``default``: the workload's credential. The first request generates a key (in the
  token in hsm mode, in memory in software mode), builds a CSR for the workload
  identity, has the configured CA sign it and records the result under the state
  directory; a restarted server serves the recorded credential again as long as its key
  still exists and it has not expired.
- ``ROOTCA``: the CA's trust bundle.
- any other name, in hsm mode: a key imported with ``scm keys import`` whose chain is
  stored beside it in the token (gateway certificates).

The identity comes from settings, never from Envoy's node metadata: any process that
can open the socket can claim any node metadata, so trusting it would let one workload
obtain another's certificate. (istio-agent likewise takes the identity from its own
credentials, not from Envoy.)

Renewal timing is :meth:`CertificateIssuer.renew_at`; :mod:`scm.sds.renewal` drives it.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import random
import secrets
import time
from dataclasses import dataclass, replace

from cryptography import x509

from scm.errors import ConfigError, ScmError
from scm.keys import KeyType
from scm.pki import CertificateAuthority, WorkloadIdentity, build_csr
from scm.sds.attested import EvidenceProvider
from scm.sds.credentials import DEFAULT, ROOTCA, Credential, HsmKey, SecretValue, TrustBundle
from scm.sds.health import IssuanceHealth
from scm.sds.leafkeys import HSM, LeafKeys
from scm.sds.loader import key_type_of
from scm.sds.records import CredentialRecords, IssuedRecord, RetiredKey

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IssuancePolicy:
    """How long certificates live and when they are renewed.

    Renewal starts when ``grace_ratio`` of a certificate's lifetime is left (Istio's
    default is half), a little earlier by up to ``jitter_ratio`` of the lifetime so
    that many servers restarted together do not all renew at the same moment.
    """

    ttl: datetime.timedelta = datetime.timedelta(hours=24)
    grace_ratio: float = 0.5
    jitter_ratio: float = 0.05
    key_type: KeyType = KeyType.EC_P256

    def __post_init__(self) -> None:
        if not 0 < self.grace_ratio < 1:
            raise ConfigError(f"grace ratio {self.grace_ratio} must be between 0 and 1")
        if not 0 <= self.jitter_ratio < 1 - self.grace_ratio:
            raise ConfigError(f"jitter ratio {self.jitter_ratio} leaves no time to renew")


class CertificateIssuer:
    """Produces ``default``, ``ROOTCA`` and imported credentials for the secret store."""

    def __init__(
        self,
        ca: CertificateAuthority,
        keys: LeafKeys,
        identity: WorkloadIdentity,
        records: CredentialRecords,
        policy: IssuancePolicy | None = None,
        evidence: EvidenceProvider | None = None,
    ) -> None:
        self.ca = ca
        self.evidence = evidence  # attested issuance: see scm.sds.attested
        self.keys = keys
        self.identity = identity
        self.records = records
        self.policy = policy or IssuancePolicy()
        self.health = IssuanceHealth()
        self.current: IssuedRecord | None = None
        self.first_issued = asyncio.Event()
        self._jitter = random.random() * self.policy.jitter_ratio

    async def provide(self, name: str) -> SecretValue | None:
        if name == ROOTCA:
            return TrustBundle(tuple(self.ca.trust_bundle()))
        if name == DEFAULT:
            return self.credential(await self.obtain())
        if self.keys.mode == HSM:
            return await asyncio.to_thread(self._imported, name)
        return None

    async def obtain(self) -> IssuedRecord:
        """The recorded credential if it is still usable, else a newly issued one."""
        record = await asyncio.to_thread(self._usable_record)
        if record is None:
            record = await self.issue()
        else:
            log.info("serving the recorded %s certificate (key %s)", DEFAULT, record.key_label)
            self._set_current(record)
        return record

    async def issue(self) -> IssuedRecord:
        """A new key and certificate for the identity; the old key is retired, not deleted."""
        started = time.perf_counter()
        label = f"sds-{DEFAULT}-{secrets.token_hex(6)}"
        try:
            csr = await asyncio.to_thread(self._new_key_and_csr, label)
            issued = await self.ca.sign(csr, self.policy.ttl)
        except BaseException as exc:
            # nothing half-created: a key without a certificate is useless
            await asyncio.to_thread(self.keys.delete_if_present, label)
            if isinstance(exc, ScmError):
                self.health.failed(str(exc))
            raise
        previous = self.current or await asyncio.to_thread(self.records.load, DEFAULT)
        retired: tuple[RetiredKey, ...] = ()
        if previous is not None:
            retired = (*previous.retired, RetiredKey(previous.key_label, previous.not_after))
        record = IssuedRecord(
            chain=tuple(issued.chain),
            key_label=label,
            key_mode=self.keys.mode,
            issued_at=datetime.datetime.now(datetime.UTC),
            retired=retired,
        )
        await asyncio.to_thread(self.records.save, DEFAULT, record)
        self.health.succeeded(time.perf_counter() - started)
        log.info(
            "issued %s certificate %x for %s, key %s, valid until %s",
            DEFAULT,
            record.chain[0].serial_number,
            self.identity.spiffe_id,
            label,
            record.not_after.isoformat(),
        )
        self._set_current(record)
        return record

    def credential(self, record: IssuedRecord) -> Credential:
        return Credential(record.chain, self.keys.reference(record.key_label, self.policy.key_type))

    def renew_at(self, record: IssuedRecord) -> datetime.datetime:
        """When renewal of ``record`` starts: grace ratio of its lifetime left, less jitter."""
        lifetime = record.not_after - record.issued_at
        return record.not_after - lifetime * (self.policy.grace_ratio + self._jitter)

    def next_retirement(self) -> datetime.datetime | None:
        if self.current is None or not self.current.retired:
            return None
        return min(r.not_after for r in self.current.retired)

    async def retire_expired(self) -> None:
        """Delete the keys of replaced certificates that have expired by now."""
        record = self.current
        if record is None:
            return
        now = datetime.datetime.now(datetime.UTC)
        expired = [r for r in record.retired if r.not_after <= now]
        if not expired:
            return
        for retired in expired:
            await asyncio.to_thread(self.keys.delete_if_present, retired.key_label)
            log.info("retired key %s (its certificate expired)", retired.key_label)
        kept = tuple(r for r in record.retired if r not in expired)
        record = replace(record, retired=kept)
        await asyncio.to_thread(self.records.save, DEFAULT, record)
        self.current = record

    def _set_current(self, record: IssuedRecord) -> None:
        self.current = record
        self.health.next_renewal = self.renew_at(record)
        self.first_issued.set()

    def _new_key_and_csr(self, label: str) -> x509.CertificateSigningRequest:
        self.keys.keystore.generate(label, self.policy.key_type)
        try:
            signer = self.keys.keystore.signer(label)
            evidence = self.evidence(signer.public_key()) if self.evidence else None
            return build_csr(self.identity, signer, evidence)
        except BaseException:
            self.keys.delete_if_present(label)
            raise

    def _usable_record(self) -> IssuedRecord | None:
        record = self.records.load(DEFAULT)
        if record is None:
            return None
        now = datetime.datetime.now(datetime.UTC)
        if record.key_mode != self.keys.mode or record.not_after <= now:
            return None
        if self.keys.keystore.find(record.key_label) is None:
            log.info("the recorded %s key %s is gone; issuing anew", DEFAULT, record.key_label)
            return None
        return record

    def _imported(self, name: str) -> Credential | None:
        info = self.keys.keystore.find(name)
        chain_pem = self.keys.keystore.certificate(name) if info is not None else None
        if info is None or chain_pem is None:
            return None
        chain = tuple(x509.load_pem_x509_certificates(chain_pem))
        if _is_ca(chain[0]):
            # the token also holds the local CA's key; a CA is never a workload credential
            return None
        return Credential(chain, HsmKey(name, self.keys.token_label, key_type_of(chain[0])))


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False
