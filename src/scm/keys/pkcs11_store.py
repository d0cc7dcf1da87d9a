"""The PKCS#11 keystore: key pairs created and used inside a token, never leaving it.

Every call into the module is made under the process's PKCS#11 lock (see
:mod:`scm.keys.token_lock`), on the calling thread, over one logged-in read/write session,
which is re-opened once when the token reports it lost (a restarted token, a closed
session).
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pkcs11
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pkcs11 import Attribute, CertificateType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.util import biginteger
from pkcs11.util.ec import encode_named_curve_parameters

from scm.keys import library
from scm.keys.errors import (
    KeyExistsError,
    KeyFormatError,
    KeyNotFoundError,
    TokenLoginError,
    TokenUnavailableError,
)
from scm.keys.model import KeyInfo, KeyType, Signer
from scm.keys.pem import (
    check_certificate_matches,
    load_certificate_chain,
    load_private_key,
)
from scm.keys.signer import TokenEllipticCurveKey, TokenRSAKey
from scm.keys.token_lock import pkcs11_lock

if TYPE_CHECKING:
    from pkcs11._pkcs11 import lib as Library

log = logging.getLogger(__name__)
R = TypeVar("R")

_CURVES = {
    KeyType.EC_P256: ("secp256r1", ec.SECP256R1()),
    KeyType.EC_P384: ("secp384r1", ec.SECP384R1()),
}
_EC_PARAMS = {kt: encode_named_curve_parameters(name) for kt, (name, _) in _CURVES.items()}
_CHAIN_APPLICATION = "scm certificate chain"

# Errors after which the session is re-opened and the call tried once more.
_SESSION_LOST = (
    pkcs11.SessionClosed,
    pkcs11.SessionHandleInvalid,
    pkcs11.DeviceRemoved,
    pkcs11.TokenNotPresent,
    pkcs11.UserNotLoggedIn,
)


class Pkcs11Keystore:
    """Keys in one PKCS#11 token, logged in as the user."""

    def __init__(
        self, module: str, token_label: str, pin: str, softhsm_conf: Path | None = None
    ) -> None:
        self._module = module
        self._token_label = token_label
        self._pin = pin
        self._softhsm_conf = softhsm_conf
        self._lock = pkcs11_lock()
        self._lib: Library | None = None
        self._session: pkcs11.Session | None = None
        self._private_keys: dict[str, pkcs11.SignMixin] = {}
        self._mechanisms: set[Mechanism] = set()
        self._slot: pkcs11.Slot | None = None
        self._closed = False
        self._lock.run(self._open)

    @property
    def location(self) -> str:
        return f"pkcs11:{self._token_label}"

    # -- session handling (under the lock) -----------------------------------------------

    def _open(self) -> None:
        self._lib = library.acquire(self._module, self._softhsm_conf)
        try:
            self._login(self._lib)
        except BaseException:
            library.release(self._module)
            raise

    def _login(self, lib: Library) -> None:
        try:
            token = lib.get_token(token_label=self._token_label)
        except pkcs11.NoSuchToken:
            raise TokenUnavailableError(
                f"no token labelled {self._token_label!r} in PKCS#11 module {self._module}"
            ) from None
        except pkcs11.MultipleTokensReturned:
            raise TokenUnavailableError(
                f"more than one token is labelled {self._token_label!r} in {self._module}"
            ) from None
        try:
            self._session = token.open(rw=True, user_pin=self._pin)
        except pkcs11.UserAlreadyLoggedIn:
            # PKCS#11 logins are per process: another session of ours logged in already.
            self._session = token.open(rw=True)
        except (pkcs11.PinIncorrect, pkcs11.PinInvalid, pkcs11.PinLenRange):
            raise TokenLoginError(
                f"the PIN for token {self._token_label!r} was rejected (wrong PIN)"
            ) from None
        except pkcs11.PinLocked:
            raise TokenLoginError(f"the PIN of token {self._token_label!r} is locked") from None
        except pkcs11.PKCS11Error as exc:
            raise TokenUnavailableError(
                f"cannot open token {self._token_label!r}: {type(exc).__name__}"
            ) from None
        self._slot = token.slot
        self._mechanisms = set(token.slot.get_mechanisms())

    def _reopen(self) -> None:
        log.warning("PKCS#11 session with token %r was lost; re-opening it", self._token_label)
        self._close_session()
        assert self._lib is not None
        self._login(self._lib)

    def _close_session(self) -> None:
        self._private_keys.clear()
        if self._session is not None:
            with contextlib.suppress(pkcs11.PKCS11Error):  # the token may be gone already
                self._session.close()
            self._session = None

    def _call(self, fn: Callable[..., R], *args: Any) -> R:
        """Run ``fn(*args)`` under the lock with a live session, translating token errors."""
        return self._lock.run(self._guarded, fn, *args)

    def _guarded(self, fn: Callable[..., R], *args: Any) -> R:
        if self._closed or self._session is None:
            raise TokenUnavailableError(f"the keystore for token {self._token_label!r} is closed")
        try:
            try:
                return fn(*args)
            except _SESSION_LOST:
                self._reopen()
                return fn(*args)
        except pkcs11.PKCS11Error as exc:
            raise TokenUnavailableError(
                f"token {self._token_label!r} refused the operation: {type(exc).__name__}"
            ) from exc

    @property
    def _s(self) -> pkcs11.Session:
        assert self._session is not None
        return self._session

    # -- public interface ----------------------------------------------------------------

    def generate(self, label: str, key_type: KeyType) -> KeyInfo:
        _check_label(label)
        return self._call(self._generate, label, key_type)

    def find(self, label: str) -> KeyInfo | None:
        return self._call(self._find_info, label)

    def list(self) -> builtins.list[KeyInfo]:
        return self._call(self._list)

    def delete(self, label: str) -> None:
        self._call(self._delete, label)

    def import_key(self, label: str, key_pem: bytes, cert_pem: bytes | None = None) -> KeyInfo:
        _check_label(label)
        key, key_type = load_private_key(key_pem)
        chain = None
        if cert_pem is not None:
            chain = load_certificate_chain(cert_pem)
            check_certificate_matches(chain, key.public_key())
        return self._call(self._import, label, key, key_type, chain)

    def signer(self, label: str) -> Signer:
        public = self._call(self._public_key, label)
        if isinstance(public, ec.EllipticCurvePublicKey):
            return TokenEllipticCurveKey(self, label, public)
        return TokenRSAKey(self, label, public)

    def sign_raw(self, label: str, mechanism: Mechanism, data: bytes, param: Any = None) -> bytes:
        """Sign a digest (or DigestInfo) with ``mechanism`` inside the token."""
        return self._call(self._sign, label, mechanism, data, param)

    def store_certificate(self, label: str, chain_pem: bytes) -> None:
        chain = load_certificate_chain(chain_pem)
        self._call(self._store_certificate, label, chain)

    def certificate(self, label: str) -> bytes | None:
        return self._call(self._certificate, label)

    def close(self) -> None:
        if not self._closed:
            self._lock.run(self._close)

    def _close(self) -> None:
        self._closed = True
        self._close_session()
        library.release(self._module)

    def __enter__(self) -> Pkcs11Keystore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- token operations (under the lock) -----------------------------------------------

    def _private_key(self, label: str) -> pkcs11.SignMixin:
        cached = self._private_keys.get(label)
        if cached is not None:
            return cached
        found = self._objects(ObjectClass.PRIVATE_KEY, label=label)
        if not found:
            raise KeyNotFoundError(f"no key labelled {label!r} in {self.location}")
        key = found[0]
        assert isinstance(key, pkcs11.SignMixin)
        self._private_keys[label] = key
        return key

    def _objects(self, object_class: ObjectClass, **attrs: Any) -> builtins.list[pkcs11.Object]:
        template: dict[Attribute, Any] = {Attribute.CLASS: object_class}
        template.update({getattr(Attribute, name.upper()): value for name, value in attrs.items()})
        return list(self._s.get_objects(template))

    def _find_info(self, label: str) -> KeyInfo | None:
        try:
            return self._info(self._private_key(label))
        except KeyNotFoundError:
            return None

    def _list(self) -> builtins.list[KeyInfo]:
        keys = self._objects(ObjectClass.PRIVATE_KEY)
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
            has_certificate=bool(self._objects(ObjectClass.CERTIFICATE, id=key_id)),
            location=self.location,
        )

    def _key_type(self, key: pkcs11.Object, pkcs11_type: pkcs11.KeyType) -> KeyType:
        if pkcs11_type == pkcs11.KeyType.EC:
            params = key[Attribute.EC_PARAMS]
            for key_type, encoded in _EC_PARAMS.items():
                if encoded == params:
                    return key_type
        elif pkcs11_type == pkcs11.KeyType.RSA:
            bits = len(key[Attribute.MODULUS]) * 8
            for key_type in KeyType:
                if not key_type.is_ec and key_type.bits == bits:
                    return key_type
        raise TokenUnavailableError(f"key {key[Attribute.LABEL]!r} has a type scm does not use")

    def _check_free(self, label: str) -> None:
        if self._objects(ObjectClass.PRIVATE_KEY, label=label):
            raise KeyExistsError(f"a key labelled {label!r} exists already in {self.location}")

    def _check_supported(self, key_type: KeyType) -> None:
        if key_type.is_ec:
            generate, sign = Mechanism.EC_KEY_PAIR_GEN, Mechanism.ECDSA
        else:
            generate, sign = Mechanism.RSA_PKCS_KEY_PAIR_GEN, Mechanism.RSA_PKCS
        missing = [m.name for m in (generate, sign) if m not in self._mechanisms]
        if missing:
            raise TokenUnavailableError(
                f"token {self._token_label!r} cannot make {key_type.value} keys "
                f"(no {', '.join(missing)})"
            )
        assert self._slot is not None
        info = self._slot.get_mechanism_info(generate)
        low, high = info.min_key_length or 0, info.max_key_length or key_type.bits
        if not key_type.is_ec and not low <= key_type.bits <= high:
            raise TokenUnavailableError(
                f"token {self._token_label!r} makes RSA keys of {info.min_key_length} to "
                f"{info.max_key_length} bits, not {key_type.bits}"
            )

    def _generate(self, label: str, key_type: KeyType) -> KeyInfo:
        self._check_free(label)
        self._check_supported(key_type)
        key_id = secrets.token_bytes(8)
        public_template = {Attribute.TOKEN: True, Attribute.PRIVATE: False, Attribute.VERIFY: True}
        private_template = {**_PRIVATE_KEY_POLICY, Attribute.TOKEN: True}
        common: dict[str, Any] = {
            "id": key_id,
            "label": label,
            "store": True,
            "capabilities": MechanismFlag.SIGN | MechanismFlag.VERIFY,
            "public_template": public_template,
            "private_template": private_template,
        }
        if key_type.is_ec:
            params = self._s.create_domain_parameters(
                pkcs11.KeyType.EC, {Attribute.EC_PARAMS: _EC_PARAMS[key_type]}, local=True
            )
            _, private = params.generate_keypair(**common)
        else:
            _, private = self._s.generate_keypair(pkcs11.KeyType.RSA, key_type.bits, **common)
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
        named = {Attribute.TOKEN: True, Attribute.LABEL: label, Attribute.ID: key_id}
        private_attrs, public_attrs = _key_attributes(key)
        created: builtins.list[pkcs11.Object] = []
        try:
            created.append(self._s.create_object({**private_attrs, **_PRIVATE_KEY_POLICY, **named}))
            created.append(
                self._s.create_object(
                    {**public_attrs, **named, Attribute.PRIVATE: False, Attribute.VERIFY: True}
                )
            )
            if chain is not None:
                created.extend(self._create_certificate_objects(label, key_id, chain))
        except BaseException:
            # Leave no half-imported key behind.
            for obj in reversed(created):
                obj.destroy()
            raise
        log.info("imported %s key %r into %s", key_type.value, label, self.location)
        return self._info(created[0])

    def _public_key(self, label: str) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
        key_id = self._private_key(label)[Attribute.ID]
        found = self._objects(ObjectClass.PUBLIC_KEY, id=key_id)
        if not found:
            raise KeyNotFoundError(f"key {label!r} has no public key object in {self.location}")
        public = found[0]
        if public[Attribute.KEY_TYPE] == pkcs11.KeyType.EC:
            key_type = self._key_type(public, pkcs11.KeyType.EC)
            point = _der_octet_string_value(public[Attribute.EC_POINT])
            return ec.EllipticCurvePublicKey.from_encoded_point(_CURVES[key_type][1], point)
        modulus = int.from_bytes(public[Attribute.MODULUS], "big")
        exponent = int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big")
        return rsa.RSAPublicNumbers(exponent, modulus).public_key()

    def _sign(self, label: str, mechanism: Mechanism, data: bytes, param: Any) -> bytes:
        signature: bytes = self._private_key(label).sign(
            data, mechanism=mechanism, mechanism_param=param
        )
        return signature

    def _delete(self, label: str) -> None:
        key = self._private_key(label)
        key_id = key[Attribute.ID]
        self._remove_certificate_objects(label, key_id)
        for public in self._objects(ObjectClass.PUBLIC_KEY, id=key_id):
            public.destroy()
        key.destroy()
        self._private_keys.pop(label, None)
        log.info("deleted key %r from %s", label, self.location)

    def _store_certificate(self, label: str, chain: builtins.list[x509.Certificate]) -> None:
        check_certificate_matches(chain, self._public_key(label))
        key_id = self._private_key(label)[Attribute.ID]
        new = self._create_certificate_objects(label, key_id, chain)
        # Replace the old objects only once the new ones exist.
        old = [o for o in self._certificate_objects(label, key_id) if o not in new]
        for obj in old:
            obj.destroy()

    def _certificate(self, label: str) -> bytes | None:
        self._private_key(label)
        chains = self._objects(ObjectClass.DATA, label=label, application=_CHAIN_APPLICATION)
        if not chains:
            return None
        value: bytes = chains[0][Attribute.VALUE]
        return value

    def _create_certificate_objects(
        self, label: str, key_id: bytes, chain: builtins.list[x509.Certificate]
    ) -> builtins.list[pkcs11.Object]:
        """The leaf as an X.509 object (for other PKCS#11 tools) and the whole chain as data."""
        leaf = chain[0]
        pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
        created = [
            self._s.create_object(
                {
                    Attribute.CLASS: ObjectClass.CERTIFICATE,
                    Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
                    Attribute.TOKEN: True,
                    Attribute.PRIVATE: False,
                    Attribute.LABEL: label,
                    Attribute.ID: key_id,
                    Attribute.SUBJECT: leaf.subject.public_bytes(),
                    Attribute.VALUE: leaf.public_bytes(serialization.Encoding.DER),
                }
            )
        ]
        try:
            created.append(
                self._s.create_object(
                    {
                        Attribute.CLASS: ObjectClass.DATA,
                        Attribute.TOKEN: True,
                        Attribute.PRIVATE: False,
                        Attribute.LABEL: label,
                        Attribute.APPLICATION: _CHAIN_APPLICATION,
                        Attribute.VALUE: pem,
                    }
                )
            )
        except BaseException:
            created[0].destroy()
            raise
        return created

    def _certificate_objects(self, label: str, key_id: bytes) -> builtins.list[pkcs11.Object]:
        return self._objects(ObjectClass.CERTIFICATE, id=key_id) + self._objects(
            ObjectClass.DATA, label=label, application=_CHAIN_APPLICATION
        )

    def _remove_certificate_objects(self, label: str, key_id: bytes) -> None:
        for obj in self._certificate_objects(label, key_id):
            obj.destroy()


# Private keys scm puts in a token can sign and nothing else, and can never be read out.
_PRIVATE_KEY_POLICY: dict[Attribute, Any] = {
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.SIGN: True,
    Attribute.DECRYPT: False,
    Attribute.UNWRAP: False,
}


def _check_label(label: str) -> None:
    if not label or not label.isprintable() or len(label) > 64:
        raise KeyFormatError("a key label must be 1 to 64 printable characters")


def _key_attributes(key: Signer) -> tuple[dict[Attribute, Any], dict[Attribute, Any]]:
    """PKCS#11 attributes of the private and public halves of ``key``."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        key_type = KeyType.of_public_key(key.public_key())
        assert key_type is not None
        params = _EC_PARAMS[key_type]
        point = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        base = {Attribute.KEY_TYPE: pkcs11.KeyType.EC, Attribute.EC_PARAMS: params}
        return (
            {
                **base,
                Attribute.CLASS: ObjectClass.PRIVATE_KEY,
                Attribute.VALUE: biginteger(key.private_numbers().private_value),
            },
            {
                **base,
                Attribute.CLASS: ObjectClass.PUBLIC_KEY,
                Attribute.EC_POINT: _der_octet_string(point),
            },
        )
    numbers = key.private_numbers()
    public = numbers.public_numbers
    base = {
        Attribute.KEY_TYPE: pkcs11.KeyType.RSA,
        Attribute.MODULUS: biginteger(public.n),
        Attribute.PUBLIC_EXPONENT: biginteger(public.e),
    }
    return (
        {
            **base,
            Attribute.CLASS: ObjectClass.PRIVATE_KEY,
            Attribute.PRIVATE_EXPONENT: biginteger(numbers.d),
            Attribute.PRIME_1: biginteger(numbers.p),
            Attribute.PRIME_2: biginteger(numbers.q),
            Attribute.EXPONENT_1: biginteger(numbers.dmp1),
            Attribute.EXPONENT_2: biginteger(numbers.dmq1),
            Attribute.COEFFICIENT: biginteger(numbers.iqmp),
        },
        {**base, Attribute.CLASS: ObjectClass.PUBLIC_KEY},
    )


def _der_octet_string(value: bytes) -> bytes:
    """DER OCTET STRING around an EC point (CKA_EC_POINT); points here are < 128 bytes."""
    return bytes([0x04, len(value)]) + value


def _der_octet_string_value(der: bytes) -> bytes:
    """The EC point inside CKA_EC_POINT; some tokens return it without the DER wrapping."""
    if len(der) >= 2 and der[0] == 0x04 and der[1] == len(der) - 2:
        return der[2:]
    return der
