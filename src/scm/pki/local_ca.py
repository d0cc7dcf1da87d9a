"""A certificate authority on this machine whose signing key lives in the keystore.

State under ``<state dir>/ca``: ``ca.json`` (trust domain, key label) and ``ca.pem``
(the CA certificate, followed by its parent chain when it is an intermediate), and while
``ca init`` runs ``.init.json`` (the key it is about to label). The key is only a label in
the keystore: the token signs, the key never leaves it. ``ca init`` holds the state
directory's lock, so two at once make one CA.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from scm import crashpoints
from scm.errors import ConfigError, ConflictError, InputError, ScmError
from scm.files import write_atomic
from scm.keys import Keystore, KeyType, Signer, staging
from scm.pki.attested import CAAttestationSettings
from scm.pki.authority import IssuedCertificate
from scm.pki.errors import CAExistsError, CANotFoundError
from scm.pki.identity import check_trust_domain, signature_hash
from scm.pki.svid import SvidPolicy, dns_name_allowed, leaf_builder
from scm.pki.ttl import parse_ttl
from scm.state_mutation import mutating

log = logging.getLogger(__name__)

CA_VALIDITY = datetime.timedelta(days=3650)
# Leaves are backdated a little so that peers with slightly slow clocks accept them.
CLOCK_SKEW = datetime.timedelta(minutes=5)
NAME_MAX = 64  # upper bound of X.509 O and CN (RFC 5280 ub-organization-name, ub-common-name)
# Written by `ca init` just before the key gets its label, removed once ca.json exists.
INIT_INTENT = ".init.json"


@dataclass(frozen=True)
class CASettings(CAAttestationSettings):
    """The ``[ca]`` table (``SCM_CA_*``): ``backend`` picks the CA (scm.pki.configured);
    the attestation keys are inherited."""

    backend: str = "local"
    trust_domain: str = "cluster.local"
    key_type: str = "ec-p256"
    key_label: str = "scm-ca"
    max_ttl: str = "720h"
    dns_suffixes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Checked here so a bad table fails every command alike, naming the setting.
        if self.key_type not in {t.value for t in KeyType}:
            raise ConfigError(
                f"ca.key_type {self.key_type!r} is not one of {', '.join(t.value for t in KeyType)}"
            )
        for name in ("max_ttl", "attestation_max_age"):
            try:
                parse_ttl(getattr(self, name))
            except InputError as exc:
                raise ConfigError(f"ca.{name}: {exc}") from None
        try:
            check_trust_domain(self.trust_domain)
        except InputError as exc:
            raise ConfigError(f"ca.trust_domain: {exc}") from None
        for suffix in self.dns_suffixes:
            if not dns_name_allowed(suffix.strip(".").lower(), [suffix]):
                raise ConfigError(f"ca.dns_suffixes: {suffix!r} is not a DNS name")


def _key_usage(*, signer: bool, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=signer,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


class LocalCA:
    """Issues X.509-SVIDs for CSRs the SVID policy allows, signed in the keystore."""

    def __init__(
        self,
        keystore: Keystore,
        key_label: str,
        chain: list[x509.Certificate],
        policy: SvidPolicy,
    ) -> None:
        self._keystore = keystore
        self._signer = keystore.signer(key_label)
        self.key_label = key_label
        self.chain = chain
        self.policy = policy

    @property
    def max_ttl(self) -> datetime.timedelta:
        return self.policy.max_ttl

    @property
    def certificate(self) -> x509.Certificate:
        return self.chain[0]

    @staticmethod
    def directory(state_dir: Path) -> Path:
        return state_dir / "ca"

    @classmethod
    def init(
        cls,
        state_dir: Path,
        keystore: Keystore,
        trust_domain: str,
        key_type: KeyType = KeyType.EC_P256,
        key_label: str = "scm-ca",
        parent: tuple[list[x509.Certificate], Signer] | None = None,
        max_ttl: datetime.timedelta = datetime.timedelta(days=30),
    ) -> LocalCA:
        """Create the CA: a root, or an intermediate signed by ``parent`` (chain, key).

        The parent's key is used once, in memory, and never stored.
        """
        check_trust_domain(trust_domain)
        if parent is not None:
            _check_parent(*parent)
        directory = cls.directory(state_dir)
        with mutating(state_dir):
            if (directory / "ca.json").exists():
                # A kill after ca.json but before the intent was removed: the CA is whole.
                with contextlib.suppress(OSError):
                    (directory / INIT_INTENT).unlink(missing_ok=True)
                raise CAExistsError(f"a CA exists already in {directory}")
            _roll_back_interrupted_init(directory, keystore, key_label)
            if (existing := keystore.find(key_label)) is not None:
                raise ConflictError(
                    f"a key labelled {key_label!r} exists already in {existing.location} and "
                    f"no CA uses it: delete it (`scm keys delete {key_label}`) or set ca.key_label"
                )
            chain = _create(directory, keystore, trust_domain, key_type, key_label, parent)
        return cls(keystore, key_label, chain, SvidPolicy(trust_domain, max_ttl=max_ttl))

    @classmethod
    def key_label_in(cls, state_dir: Path) -> str | None:
        """The label of the key a complete CA under ``state_dir`` uses, if there is one."""
        try:
            label = json.loads((cls.directory(state_dir) / "ca.json").read_text())["key_label"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return label if isinstance(label, str) else None

    @classmethod
    def load(
        cls,
        state_dir: Path,
        keystore: Keystore,
        dns_suffixes: tuple[str, ...] = (),
        max_ttl: datetime.timedelta = datetime.timedelta(days=30),
    ) -> LocalCA:
        """The CA ``init`` created under ``state_dir``."""
        directory = cls.directory(state_dir)
        try:
            meta = json.loads((directory / "ca.json").read_text())
            chain = x509.load_pem_x509_certificates((directory / "ca.pem").read_bytes())
        except FileNotFoundError:
            raise CANotFoundError(f"no CA in {directory}: run `scm ca init` first") from None
        policy = SvidPolicy(meta["trust_domain"], dns_suffixes, max_ttl)
        return cls(keystore, meta["key_label"], chain, policy)

    def issue(
        self, csr: x509.CertificateSigningRequest, ttl: datetime.timedelta
    ) -> IssuedCertificate:
        """Check ``csr`` against the SVID policy and sign a leaf valid for ``ttl`` (capped)."""
        request = self.policy.approve(csr)
        now = datetime.datetime.now(datetime.UTC)
        not_after = self.policy.not_after(now, ttl, self.certificate.not_valid_after_utc)
        builder = leaf_builder(request, self.certificate, now - CLOCK_SKEW, not_after, _serial())
        leaf = builder.sign(self._signer, signature_hash(self._signer))
        return IssuedCertificate([leaf, *self.chain])

    async def sign(
        self, csr: x509.CertificateSigningRequest, ttl: datetime.timedelta
    ) -> IssuedCertificate:
        return await asyncio.to_thread(self.issue, csr, ttl)

    def trust_bundle(self) -> list[x509.Certificate]:
        return [self.chain[-1]]


def _create(
    directory: Path,
    keystore: Keystore,
    trust_domain: str,
    key_type: KeyType,
    key_label: str,
    parent: tuple[list[x509.Certificate], Signer] | None,
) -> list[x509.Certificate]:
    """Make the CA's key, certificate and files; on any failure leave nothing behind.

    The key is made under a staging label and renamed only once its certificate is stored,
    and ``ca.json`` is written last. A kill before the rename leaves a staging key the next
    change sweeps; a kill after it leaves the intent file, and the next ``ca init`` rolls the
    half-made CA back (no certificate was ever issued by it: that needs ``ca.json``).
    """
    staged = staging.new_label()
    info = keystore.generate(staged, key_type)
    label = staged
    complete = False
    try:
        crashpoints.reach("ca.key-staged")
        signer = keystore.signer(staged)
        certificate = _ca_certificate(trust_domain, signer, parent)
        chain = [certificate] + (parent[0] if parent else [])
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
        keystore.store_certificate(staged, pem)
        crashpoints.reach("ca.chain-stored")
        write_atomic(directory / "ca.pem", pem)
        intent = {"key_label": key_label, "key_id": info.key_id}
        write_atomic(directory / INIT_INTENT, json.dumps(intent) + "\n")
        crashpoints.reach("ca.intent-written")
        keystore.rename(staged, key_label)
        label = key_label
        crashpoints.reach("ca.key-committed")
        meta = {"trust_domain": trust_domain, "key_label": key_label}
        # Written last: its presence marks the CA as complete.
        write_atomic(directory / "ca.json", json.dumps(meta, indent=2) + "\n")
        complete = True
        crashpoints.reach("ca.json-written")
        (directory / INIT_INTENT).unlink()
    except BaseException:
        if not complete:
            (directory / "ca.pem").unlink(missing_ok=True)
            (directory / INIT_INTENT).unlink(missing_ok=True)
            with contextlib.suppress(ScmError):
                keystore.delete(label)
        raise
    return chain


def _roll_back_interrupted_init(directory: Path, keystore: Keystore, key_label: str) -> None:
    """Undo a ``ca init`` killed after its key got its label but before ``ca.json``."""
    try:
        intent = json.loads((directory / INIT_INTENT).read_text())
    except FileNotFoundError:
        return
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {directory / INIT_INTENT}: {exc}") from None
    key = keystore.find(intent.get("key_label", key_label))
    if key is not None and key.key_id == intent.get("key_id"):
        keystore.delete(key.label)  # ours: the id was recorded before the rename
    (directory / "ca.pem").unlink(missing_ok=True)
    (directory / INIT_INTENT).unlink()
    log.warning("rolled back an interrupted `scm ca init` in %s", directory)


def _serial() -> int:
    # 159 random bits: positive and within the 20 octets RFC 5280 allows.
    return secrets.randbits(159) | 1


def _check_parent(chain: list[x509.Certificate], key: Signer) -> None:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if chain[0].public_key().public_bytes(der, spki) != key.public_key().public_bytes(der, spki):
        raise InputError("the parent certificate does not match the parent key")
    try:
        constraints = chain[0].extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise InputError("the parent certificate is not a CA certificate")


def _ca_certificate(
    trust_domain: str, signer: Signer, parent: tuple[list[x509.Certificate], Signer] | None
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    kind = "intermediate" if parent else "root"
    # X.509 caps O and CN at 64 characters and a trust domain may have 255: O names the
    # trust domain when it fits (it is informational; ca.json is what scm reads back).
    common_name = f"scm {kind} CA for {trust_domain}"
    if len(common_name) > NAME_MAX:
        common_name = f"scm {kind} CA"
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if len(trust_domain) <= NAME_MAX:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, trust_domain))
    subject = x509.Name(attributes)
    issuer_name, issuer_key = subject, signer
    not_after = now + CA_VALIDITY
    if parent is not None:
        issuer_name, issuer_key = parent[0][0].subject, parent[1]
        not_after = min(not_after, parent[0][0].not_valid_after_utc)
    public_key = signer.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(_serial())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signer=False, ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if parent is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(parent[1].public_key()),
            critical=False,
        )
    return builder.sign(issuer_key, signature_hash(issuer_key))
