"""Issuance: the store's :class:`~scm.sds.store.CredentialProvider` backed by a CA.

- ``default``: the workload's credential. The first request generates a key (in the
  token in hsm mode, in memory in software mode), builds a CSR for the workload
  identity, has the configured CA sign it and records the result under the state
  directory; a restarted server serves the recorded credential again only when it was
  issued for the same SPIFFE ID, DNS names and key mode under the CA's current bundle,
  its chain verifies against that bundle and its key still exists. Otherwise it is
  re-issued and the old key retired.
- ``ROOTCA``: the CA's trust bundle.
- any other name, in hsm mode: a key imported with ``scm keys import`` whose chain is
  stored beside it in the token (gateway certificates).

The identity comes from settings, never from Envoy's node metadata: any process that
can open the socket can claim any node metadata, so trusting it would let one workload
obtain another's certificate. (istio-agent likewise takes the identity from its own
credentials, not from Envoy.)

Renewal timing is :meth:`CertificateIssuer.renew_at`; :mod:`scm.sds.renewal` drives it.
Any failure (CA, token, a full or read-only disk, a bug) deletes the key made for the
attempt, is counted and logged once per new cause, and surfaces as :class:`IssuanceError`.
"""

from __future__ import annotations

import asyncio
import datetime
import errno
import logging
import os
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from cryptography import x509

from scm.crashpoints import reach as pause_point
from scm.errors import ConfigError, ScmError, UnavailableError
from scm.keys import KeyType
from scm.pki import (
    CertificateAuthority,
    InvalidSvidError,
    WorkloadIdentity,
    build_csr,
    check_svid,
)
from scm.processes import process_alive
from scm.sds.attested import EvidenceProvider
from scm.sds.chaincheck import anchor_fingerprint, chain_problem
from scm.sds.clock import Clock, SystemClock
from scm.sds.credentials import DEFAULT, ROOTCA, Credential, HsmKey, SecretValue, TrustBundle
from scm.sds.health import IssuanceHealth
from scm.sds.keypool import KeyPool
from scm.sds.leafkeys import HSM, LeafKeys
from scm.sds.loader import key_type_of
from scm.sds.records import CredentialRecords, IssuedRecord, KeyInProgress, RetiredKey

log = logging.getLogger(__name__)

LABEL_PREFIX = f"sds-{DEFAULT}-"


class IssuanceError(UnavailableError):
    """Issuing, renewing or retiring failed; the message says why in one line."""


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
        clock: Clock | None = None,
        rng: random.Random | None = None,
        pool_size: int = 0,
        evidence: EvidenceProvider | None = None,
    ) -> None:
        self.ca = ca
        self.evidence = evidence  # attested issuance: see scm.sds.attested
        self.keys = keys
        self.identity = identity
        self.records = records
        self.policy = policy or IssuancePolicy()
        self.clock = clock or SystemClock()
        self.health = IssuanceHealth(self.clock.now)
        self.current: IssuedRecord | None = None
        self.first_issued = asyncio.Event()
        self._jitter = (rng or random.Random()).random() * self.policy.jitter_ratio
        self._swept = False
        # Pre-generated token keys, so the first request does not wait for the token's
        # disk write (hsm mode only: software keys are made in microseconds).
        self.pool: KeyPool | None = None
        if pool_size > 0 and keys.mode == HSM:
            self.pool = KeyPool(pool_size, self._make_key)

    async def provide(self, name: str) -> SecretValue | None:
        if name == ROOTCA:
            return TrustBundle(tuple(self.ca.trust_bundle()))
        if name == DEFAULT:
            return self.credential(await self.obtain())
        if self.keys.mode == HSM:
            return await asyncio.to_thread(self._imported, name)
        return None

    async def obtain(self) -> IssuedRecord:
        """The recorded credential if it is still right to serve, else a newly issued one."""
        if not self._swept:
            await asyncio.to_thread(self._sweep)
        try:
            record = await asyncio.to_thread(self._usable_record)
        except Exception as exc:  # the CA's bundle or the token could not be read
            raise self._failed(exc) from exc
        if record is None:
            record = await self.issue()
        else:
            log.info("serving the recorded %s certificate (key %s)", DEFAULT, record.key_label)
            self._set_current(record)
        return record

    async def issue(self) -> IssuedRecord:
        """A new key and certificate for the identity; the old key is retired, not deleted.

        On any failure the key made for this attempt is deleted, the failure counted and
        :class:`IssuanceError` raised.
        """
        started = time.perf_counter()
        made: list[str] = []  # filled by the worker thread, so known even if cancelled
        committed: list[IssuedRecord] = []
        try:
            await _to_the_end(self._take_key, made)
            label = made[0]
            pause_point("sds.issue.key-made")
            csr = await asyncio.to_thread(self._csr, label)
            issued = await self.ca.sign(csr, self.policy.ttl)
            self._check_svid(list(issued.chain), csr.public_key(), "the issued")
            pause_point("sds.issue.signed")
            anchor = anchor_fingerprint(await asyncio.to_thread(self.ca.trust_bundle))
            await _to_the_end(self._commit, committed, label, tuple(issued.chain), anchor)
            record = committed[0]
        except BaseException as exc:
            if committed:  # cancelled once recorded: the record and its key stand
                self._set_current(committed[0])
                raise
            # nothing half-created: a key without a recorded certificate is useless
            for label in made:
                await _to_the_end(self._discard, label)
            if isinstance(exc, Exception):
                raise self._failed(exc) from exc
            raise
        pause_point("sds.issue.recorded")
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
        if self.pool is not None:
            self.pool.refill_soon()
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
        now = self.clock.now()
        expired = [r for r in record.retired if r.not_after <= now]
        if not expired:
            return
        try:
            await asyncio.to_thread(self._retire, record, expired)
        except Exception as exc:
            raise self._failed(exc) from exc

    def _retire(self, record: IssuedRecord, expired: list[RetiredKey]) -> None:
        with self.records.locked():
            for retired in expired:
                self.keys.delete_if_present(retired.key_label, retired.key_mode)
                log.info("retired key %s (its certificate expired)", retired.key_label)
            kept = tuple(r for r in record.retired if r not in expired)
            updated = replace(record, retired=kept)
            self.records.save(DEFAULT, updated)
        self.current = updated

    def _failed(self, exc: Exception) -> IssuanceError:
        reason = describe_failure(exc, self.records.directory)
        if self.health.failed(reason):
            log.warning("issuing %s failed: %s", DEFAULT, reason)
        else:
            log.debug("issuing %s failed again: %s", DEFAULT, reason)
        return IssuanceError(reason)

    def _set_current(self, record: IssuedRecord) -> None:
        self.current = record
        self.health.next_renewal = self.renew_at(record)
        self.first_issued.set()

    def _take_key(self, made: list[str]) -> None:
        """A key for one issuance, into ``made``: from the pool, else made now."""
        label = self.pool.take() if self.pool is not None else None
        made.append(label if label is not None else self._make_key())

    def _csr(self, label: str) -> x509.CertificateSigningRequest:
        signer = self.keys.keystore.signer(label)
        # attested issuance: the TEE's evidence binds this very key (see scm.sds.attested)
        evidence = self.evidence(signer.public_key()) if self.evidence else None
        return build_csr(self.identity, signer, evidence)

    async def start_pool(self) -> None:
        """Fill the key pool in the background (when there is one)."""
        if self.pool is not None:
            if not self._swept:
                await asyncio.to_thread(self._sweep)
            self.pool.refill_soon()

    async def aclose(self) -> None:
        """Stop filling the pool and delete its unused keys (they were never served)."""
        if self.pool is None:
            return
        unused = await self.pool.close()
        for label in unused:
            await asyncio.to_thread(self._discard, label)

    def _make_key(self) -> str:
        label = f"{LABEL_PREFIX}{secrets.token_hex(6)}"
        if self.keys.mode == HSM:
            # listed before it exists, so a crash right after leaves nothing unaccounted
            with self.records.locked():
                keys = self.records.in_progress()
                keys[label] = KeyInProgress(label, os.getpid(), self.clock.now())
                self.records.set_in_progress(keys)
        self.keys.keystore.generate(label, self.policy.key_type)
        return label

    def _commit(
        self,
        committed: list[IssuedRecord],
        label: str,
        chain: tuple[x509.Certificate, ...],
        anchor: str,
    ) -> None:
        """Record the new credential (into ``committed`` too), retiring the previous key,
        in one locked step."""
        with self.records.locked():
            previous = self.records.load(DEFAULT) or self.current
            retired: tuple[RetiredKey, ...] = ()
            if previous is not None:
                retired = (
                    *previous.retired,
                    RetiredKey(previous.key_label, previous.not_after, previous.key_mode),
                )
            record = IssuedRecord(
                chain=chain,
                key_label=label,
                key_mode=self.keys.mode,
                issued_at=self.clock.now(),
                retired=retired,
                spiffe_id=self.identity.spiffe_id,
                dns_names=tuple(self.identity.dns_names),
                anchor_fingerprint=anchor,
            )
            self.records.save(DEFAULT, record)
            committed.append(record)
            if self.keys.mode == HSM:
                try:
                    self._forget_in_progress({label})
                except OSError as exc:  # harmless: the sweep spares keys a record holds
                    log.debug("could not update the keys in progress: %s", exc)

    def _discard(self, label: str) -> None:
        """Delete a key whose issuance failed, and its in-progress entry if possible."""
        try:
            self.keys.delete_if_present(label)
        except Exception as exc:  # the next start's sweep deletes it
            log.warning("could not delete key %s of a failed issuance: %s", label, exc)
            return
        if self.keys.mode == HSM:
            try:
                with self.records.locked():
                    self._forget_in_progress({label})
            except Exception as exc:  # a stale entry names a key that is gone: harmless
                log.debug("could not update the keys in progress: %s", exc)

    def _forget_in_progress(self, labels: set[str]) -> None:
        keys = self.records.in_progress()
        if labels & keys.keys():
            self.records.set_in_progress({k: v for k, v in keys.items() if k not in labels})

    def _sweep(self) -> None:
        """Delete keys that dead processes made and never recorded (kill -9 mid-issuance)."""
        self._swept = True
        if self.keys.mode != HSM:
            return
        try:
            with self.records.locked():
                keys = self.records.in_progress()
                record = self.records.load(DEFAULT)
                kept = record.labels() if record else set()
                dead = {k.label for k in keys.values() if not process_alive(k.pid)}
                for label in sorted(dead - kept):
                    self.keys.delete_if_present(label)
                    log.info("deleted key %s left by an interrupted issuance", label)
                if dead:
                    self._forget_in_progress(dead)
        except Exception as exc:  # issuance itself reports a lasting fault
            log.warning("could not sweep keys of interrupted issuances: %s", exc)

    def _usable_record(self) -> IssuedRecord | None:
        record = self.records.load(DEFAULT)
        if record is None:
            return None
        problem = self._record_problem(record)
        if problem is not None:
            log.info("not serving the recorded %s certificate: %s; issuing anew", DEFAULT, problem)
            return None
        key = self.keys.keystore.signer(record.key_label).public_key()
        try:
            self._check_svid(list(record.chain), key, "the recorded")
        except InvalidSvidError as exc:
            log.warning("%s; issuing anew", exc)
            return None
        return record

    def _check_svid(self, chain: list[x509.Certificate], key: object, which: str) -> None:
        """Serve only an X.509-SVID for this identity and key, verifying to the CA's bundle."""
        check_svid(
            chain,
            self.ca.trust_bundle(),
            expected_spiffe_id=self.identity.spiffe_id,
            expected_key=key,
            allowed_dns=self.identity.dns_names,
            source=f"{which} {DEFAULT} certificate",
            now=self.clock.now(),
        )

    def _record_problem(self, record: IssuedRecord) -> str | None:
        if record.key_mode != self.keys.mode:
            return f"it was issued in {record.key_mode} key mode"
        if record.spiffe_id != self.identity.spiffe_id:
            return f"it was issued for {record.spiffe_id or 'an unrecorded identity'}"
        if tuple(record.dns_names) != tuple(self.identity.dns_names):
            return "it was issued for other DNS names"
        bundle = self.ca.trust_bundle()
        if record.anchor_fingerprint != anchor_fingerprint(bundle):
            return "the CA's trust bundle has changed since"
        now = self.clock.now()
        if record.not_after <= now:
            return "it has expired"
        problem = chain_problem(record.chain, bundle, self.identity, now)
        if problem is not None:
            return problem
        if self.keys.keystore.find(record.key_label) is None:
            return f"its key {record.key_label} is gone"
        return None

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


def describe_failure(exc: Exception, state_directory: object) -> str:
    """One line saying why issuance failed, naming the fault a user can act on."""
    if isinstance(exc, ScmError):
        text = str(exc)
    elif isinstance(exc, OSError):
        where = exc.filename or state_directory
        if exc.errno == errno.ENOSPC:
            text = f"no space left on the state directory: {where}"
        elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            text = f"the state directory is read-only or not writable: {where} ({exc.strerror})"
        else:
            text = f"{exc.strerror or exc}: {where}"
    else:
        text = f"internal error ({type(exc).__name__}: {exc})"
    return " ".join(text.split())[:500]


async def _to_the_end(fn: Callable[..., None], *args: object) -> None:
    """Run ``fn`` in a thread; if cancelled meanwhile, let it finish before re-raising, so
    its effect (a key made, a record written) is known to the caller's cleanup."""
    work = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        await asyncio.shield(work)
    except asyncio.CancelledError:
        await asyncio.wait([work])
        raise


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False
