"""The PKCS#11 keystore: key pairs created and used inside a token, never leaving it.

Sessions, locking, handles and error translation are :mod:`scm.keys.pkcs11_session`'s;
attribute templates are :mod:`scm.keys.pkcs11_templates`'. This module is the key
lifecycle: objects are made under a staging label (:mod:`scm.keys.staging`) and renamed
to their label once complete, the private key last, so a key appears whole or not at all.
With a state directory, every change holds its lock (check-and-create is atomic across
processes) and the first change a keystore makes removes what killed processes left.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, TypeVar

import pkcs11
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pkcs11 import Attribute, Mechanism, MechanismFlag, ObjectClass

from scm import crashpoints
from scm.keys import staging
from scm.keys.errors import KeyExistsError, KeyNotFoundError, TokenUnavailableError
from scm.keys.model import KeyInfo, KeyType, Signer
from scm.keys.pem import check_certificate_matches, load_certificate_chain, load_private_key
from scm.keys.pkcs11_session import TokenSession
from scm.keys.pkcs11_templates import (
    CHAIN_APPLICATION,
    CURVES,
    EC_PARAMS,
    PRIVATE_KEY_POLICY,
    PUBLIC_KEY_POLICY,
    certificate_template,
    chain_template,
    check_label,
    der_octet_string_value,
    key_attributes,
)
from scm.keys.signer import TokenEllipticCurveKey, TokenRSAKey
from scm.state_mutation import mutating

log = logging.getLogger(__name__)
R = TypeVar("R")


class Pkcs11Keystore:
    """Keys in one PKCS#11 token, logged in as the user.

    ``state_dir``, when given, is the state directory whose lock every change holds;
    ``clock`` (seconds since the epoch) dates staging objects for the sweep.
    """

    def __init__(
        self,
        module: str,
        token_label: str,
        pin: str,
        softhsm_conf: Path | None = None,
        *,
        state_dir: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._token = TokenSession(module, token_label, pin, softhsm_conf)
        self._state_dir = state_dir
        self._clock = clock  # stamps staging labels and judges their age
        self._swept = False

    @property
    def location(self) -> str:
        return self._token.location

    # -- public interface ----------------------------------------------------------------

    def generate(self, label: str, key_type: KeyType) -> KeyInfo:
        check_label(label)
        return self._change(self._generate, label, key_type)

    def find(self, label: str) -> KeyInfo | None:
        return self._token.run(self._find_info, label)

    def list(self) -> builtins.list[KeyInfo]:
        return self._token.run(self._list)

    def delete(self, label: str) -> None:
        self._change(self._delete, label)

    def rename(self, label: str, new_label: str) -> KeyInfo:
        check_label(new_label)
        return self._change(self._rename, label, new_label)

    def import_key(self, label: str, key_pem: bytes, cert_pem: bytes | None = None) -> KeyInfo:
        check_label(label)
        key, key_type = load_private_key(key_pem)
        chain = None
        if cert_pem is not None:
            chain = load_certificate_chain(cert_pem)
            check_certificate_matches(chain, key.public_key())
        return self._change(self._import, label, key, key_type, chain)

    def signer(self, label: str) -> Signer:
        public = self._token.run(self._public_key, label)
        if isinstance(public, ec.EllipticCurvePublicKey):
            return TokenEllipticCurveKey(self, label, public)
        return TokenRSAKey(self, label, public)

    def sign_raw(self, label: str, mechanism: Mechanism, data: bytes, param: Any = None) -> bytes:
        """Sign a digest (or DigestInfo) with ``mechanism`` inside the token."""
        return self._token.run(self._sign, label, mechanism, data, param)

    def store_certificate(self, label: str, chain_pem: bytes) -> None:
        chain = load_certificate_chain(chain_pem)
        self._change(self._store_certificate, label, chain)

    def certificate(self, label: str) -> bytes | None:
        return self._token.run(self._certificate, label)

    def sweep(self) -> builtins.list[str]:
        """Remove what interrupted changes left (abandoned staging objects, chains whose
        key is gone); return the labels removed."""
        with self._mutating():
            self._swept = True
            return self._token.run(self._sweep)

    def close(self) -> None:
        self._token.close()

    def __enter__(self) -> Pkcs11Keystore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- changes: under the state lock, after one sweep ------------------------------------

    def _mutating(self) -> AbstractContextManager[None]:
        if self._state_dir is None:
            return contextlib.nullcontext()
        return mutating(self._state_dir)

    def _change(self, fn: Callable[..., R], *args: Any) -> R:
        with self._mutating():
            if not self._swept:
                self._swept = True
                removed = self._token.run(self._sweep)
                if removed:
                    log.info("removed objects of interrupted changes: %s", ", ".join(removed))
            return self._token.run(fn, *args)

    # -- token operations (inside TokenSession.run) ---------------------------------------

    @property
    def _s(self) -> pkcs11.Session:
        return self._token.session

    def _find_info(self, label: str) -> KeyInfo | None:
        try:  # never from the cache: another process may have deleted or replaced it
            return self._info(self._token.private_key(label, cached=False))
        except KeyNotFoundError:
            return None

    def _list(self) -> builtins.list[KeyInfo]:
        keys = self._token.objects(ObjectClass.PRIVATE_KEY)
        return sorted((self._info(k) for k in keys), key=lambda info: info.label)

    def _info(self, key: pkcs11.Object) -> KeyInfo:
        attrs = key.get_attributes(
            [
                Attribute.LABEL,
                Attribute.ID,
                Attribute.KEY_TYPE,
                Attribute.SENSITIVE,
                Attribute.EXTRACTABLE,
                Attribute.NEVER_EXTRACTABLE,
            ]
        )
        key_id: bytes = attrs[Attribute.ID]
        return KeyInfo(
            label=attrs[Attribute.LABEL],
            key_type=self._key_type(key, attrs[Attribute.KEY_TYPE]),
            key_id=key_id.hex(),
            sensitive=bool(attrs[Attribute.SENSITIVE]),
            extractable=bool(attrs[Attribute.EXTRACTABLE]),
            never_extractable=bool(attrs[Attribute.NEVER_EXTRACTABLE]),
            has_certificate=bool(self._token.objects(ObjectClass.CERTIFICATE, id=key_id)),
            location=self.location,
        )

    def _key_type(self, key: pkcs11.Object, pkcs11_type: pkcs11.KeyType) -> KeyType:
        if pkcs11_type == pkcs11.KeyType.EC:
            params = key[Attribute.EC_PARAMS]
            for key_type, encoded in EC_PARAMS.items():
                if encoded == params:
                    return key_type
        elif pkcs11_type == pkcs11.KeyType.RSA:
            bits = len(key[Attribute.MODULUS]) * 8
            for key_type in KeyType:
                if not key_type.is_ec and key_type.bits == bits:
                    return key_type
        raise TokenUnavailableError(f"key {key[Attribute.LABEL]!r} has a type scm does not use")

    def _check_free(self, label: str) -> None:
        if self._token.objects(ObjectClass.PRIVATE_KEY, label=label):
            raise KeyExistsError(f"a key labelled {label!r} exists already in {self.location}")

    def _check_supported(self, key_type: KeyType) -> None:
        if key_type.is_ec:
            generate, sign = Mechanism.EC_KEY_PAIR_GEN, Mechanism.ECDSA
        else:
            generate, sign = Mechanism.RSA_PKCS_KEY_PAIR_GEN, Mechanism.RSA_PKCS
        label = self._token.token_label
        missing = [m.name for m in (generate, sign) if m not in self._token.mechanisms]
        if missing:
            raise TokenUnavailableError(
                f"token {label!r} cannot make {key_type.value} keys (no {', '.join(missing)})"
            )
        assert self._token.slot is not None
        info = self._token.slot.get_mechanism_info(generate)
        low, high = info.min_key_length or 0, info.max_key_length or key_type.bits
        if not key_type.is_ec and not low <= key_type.bits <= high:
            raise TokenUnavailableError(
                f"token {label!r} makes RSA keys of {info.min_key_length} to "
                f"{info.max_key_length} bits, not {key_type.bits}"
            )

    def _generate(self, label: str, key_type: KeyType) -> KeyInfo:
        self._check_free(label)
        self._check_supported(key_type)
        key_id = secrets.token_bytes(8)
        staged = staging.new_label(self._clock)
        common: dict[str, Any] = {
            "id": key_id,
            "label": staged,
            "store": True,
            "capabilities": MechanismFlag.SIGN | MechanismFlag.VERIFY,
            "public_template": {**PUBLIC_KEY_POLICY, Attribute.TOKEN: True},
            "private_template": {**PRIVATE_KEY_POLICY, Attribute.TOKEN: True},
        }
        if key_type.is_ec:
            params = self._s.create_domain_parameters(
                pkcs11.KeyType.EC, {Attribute.EC_PARAMS: EC_PARAMS[key_type]}, local=True
            )
            params.generate_keypair(**common)
        else:
            self._s.generate_keypair(pkcs11.KeyType.RSA, key_type.bits, **common)
        crashpoints.reach("keys.generate.staged")
        private = self._commit(staged, label, key_id)
        log.info("generated %s key %r in %s", key_type.value, label, self.location)
        return self._info(private)

    def _import(
        self,
        label: str,
        key: Signer,
        key_type: KeyType,
        chain: builtins.list[x509.Certificate] | None,
    ) -> KeyInfo:
        self._check_free(label)
        self._check_supported(key_type)
        key_id = secrets.token_bytes(8)
        staged = staging.new_label(self._clock)
        named = {Attribute.TOKEN: True, Attribute.LABEL: staged, Attribute.ID: key_id}
        private_attrs, public_attrs = key_attributes(key)
        created: builtins.list[pkcs11.Object] = []
        try:
            created.append(self._s.create_object({**private_attrs, **PRIVATE_KEY_POLICY, **named}))
            crashpoints.reach("keys.import.private-created")
            created.append(self._s.create_object({**public_attrs, **PUBLIC_KEY_POLICY, **named}))
            if chain is not None:
                created.append(
                    self._s.create_object(certificate_template(staged, key_id, chain[0]))
                )
                created.append(self._s.create_object(chain_template(staged, chain)))
            crashpoints.reach("keys.import.staged")
            private = self._commit(staged, label, key_id)
        except BaseException:
            # Leave no half-imported key behind.
            for obj in reversed(created):
                with contextlib.suppress(pkcs11.PKCS11Error):
                    obj.destroy()
            raise
        log.info("imported %s key %r into %s", key_type.value, label, self.location)
        return self._info(private)

    def _commit(self, staged: str, label: str, key_id: bytes) -> pkcs11.Object:
        """Rename the staged objects of ``key_id`` to ``label``, the private key last: until
        it is renamed the key does not exist under ``label`` and a sweep undoes the rest."""
        for obj in self._token.objects(ObjectClass.DATA, label=staged):
            obj[Attribute.LABEL] = label
        for object_class in (ObjectClass.CERTIFICATE, ObjectClass.PUBLIC_KEY):
            for obj in self._token.objects(object_class, id=key_id, label=staged):
                obj[Attribute.LABEL] = label
        crashpoints.reach("keys.commit.before-private")
        private = self._token.objects(ObjectClass.PRIVATE_KEY, label=staged)[0]
        private[Attribute.LABEL] = label
        self._token.forget(staged, label)
        return private

    def _rename(self, label: str, new_label: str) -> KeyInfo:
        self._check_free(new_label)
        private = self._token.private_key(label, cached=False)
        key_id: bytes = private[Attribute.ID]
        for obj in self._token.objects(
            ObjectClass.DATA, label=label, application=CHAIN_APPLICATION
        ):
            obj[Attribute.LABEL] = new_label
        for object_class in (ObjectClass.CERTIFICATE, ObjectClass.PUBLIC_KEY):
            for obj in self._token.objects(object_class, id=key_id):
                obj[Attribute.LABEL] = new_label
        private[Attribute.LABEL] = new_label
        self._token.forget(label, new_label)
        return self._info(private)

    def _public_key(self, label: str) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
        key_id = self._token.private_key(label)[Attribute.ID]
        found = self._token.objects(ObjectClass.PUBLIC_KEY, id=key_id)
        if not found:
            raise KeyNotFoundError(f"key {label!r} has no public key object in {self.location}")
        public = found[0]
        if public[Attribute.KEY_TYPE] == pkcs11.KeyType.EC:
            key_type = self._key_type(public, pkcs11.KeyType.EC)
            point = der_octet_string_value(public[Attribute.EC_POINT])
            return ec.EllipticCurvePublicKey.from_encoded_point(CURVES[key_type][1], point)
        modulus = int.from_bytes(public[Attribute.MODULUS], "big")
        exponent = int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big")
        return rsa.RSAPublicNumbers(exponent, modulus).public_key()

    def _sign(self, label: str, mechanism: Mechanism, data: bytes, param: Any) -> bytes:
        signature: bytes = self._token.private_key(label).sign(
            data, mechanism=mechanism, mechanism_param=param
        )
        return signature

    def _delete(self, label: str) -> None:
        key = self._token.private_key(label, cached=False)
        key_id = key[Attribute.ID]
        # The label goes first, to a staging label: from here the key is gone for everyone,
        # and a kill before the objects below are destroyed leaves them to the sweep.
        key[Attribute.LABEL] = staging.new_label(self._clock)
        self._token.forget(label)
        crashpoints.reach("keys.delete.unlabelled")
        self._remove_certificate_objects(label, key_id)
        for public in self._token.objects(ObjectClass.PUBLIC_KEY, id=key_id):
            public.destroy()
        key.destroy()
        log.info("deleted key %r from %s", label, self.location)

    def _store_certificate(self, label: str, chain: builtins.list[x509.Certificate]) -> None:
        check_certificate_matches(chain, self._public_key(label))
        key_id = self._token.private_key(label, cached=False)[Attribute.ID]
        old = self._certificate_objects(label, key_id)
        # The new objects are made under a staging label, so a kill before the swap below
        # leaves the old chain in place and the new one to the sweep.
        staged = staging.new_label(self._clock)
        new: builtins.list[pkcs11.Object] = []
        try:
            new.append(self._s.create_object(certificate_template(staged, key_id, chain[0])))
            new.append(self._s.create_object(chain_template(staged, chain)))
        except BaseException:
            for obj in new:
                with contextlib.suppress(pkcs11.PKCS11Error):
                    obj.destroy()
            raise
        for obj in old:
            obj.destroy()
        for obj in new:
            obj[Attribute.LABEL] = label

    def _certificate(self, label: str) -> bytes | None:
        self._token.private_key(label)
        chains = self._token.objects(ObjectClass.DATA, label=label, application=CHAIN_APPLICATION)
        if not chains:
            return None
        value: bytes = chains[0][Attribute.VALUE]
        return value

    def _certificate_objects(self, label: str, key_id: bytes) -> builtins.list[pkcs11.Object]:
        return self._token.objects(ObjectClass.CERTIFICATE, id=key_id) + self._token.objects(
            ObjectClass.DATA, label=label, application=CHAIN_APPLICATION
        )

    def _remove_certificate_objects(self, label: str, key_id: bytes) -> None:
        for obj in self._certificate_objects(label, key_id):
            obj.destroy()

    def _sweep(self) -> builtins.list[str]:
        removed: set[str] = set()
        abandoned_ids: set[bytes] = set()
        for object_class in (
            ObjectClass.PRIVATE_KEY,
            ObjectClass.PUBLIC_KEY,
            ObjectClass.CERTIFICATE,
            ObjectClass.DATA,
        ):
            for obj in self._token.objects(object_class):
                label = obj[Attribute.LABEL]
                if staging.is_staging(label) and staging.is_abandoned(label, self._clock):
                    if object_class == ObjectClass.PRIVATE_KEY:
                        abandoned_ids.add(obj[Attribute.ID])
                    obj.destroy()
                    removed.add(label)
        # A commit killed before its private key was renamed: the halves already renamed.
        for key_id in abandoned_ids:
            for object_class in (ObjectClass.PUBLIC_KEY, ObjectClass.CERTIFICATE):
                for obj in self._token.objects(object_class, id=key_id):
                    removed.add(obj[Attribute.LABEL])
                    obj.destroy()
        # ... and its chain, renamed first: scm's chain objects whose key does not exist.
        keys = {k[Attribute.LABEL] for k in self._token.objects(ObjectClass.PRIVATE_KEY)}
        for obj in self._token.objects(ObjectClass.DATA, application=CHAIN_APPLICATION):
            if obj[Attribute.LABEL] not in keys:
                removed.add(obj[Attribute.LABEL])
                obj.destroy()
        self._token.forget(*removed)
        return sorted(removed)
