"""Private-key objects for ``cryptography`` whose signatures are made inside a token.

``cryptography``'s builders call ``private_key.sign(data, ...)`` on whatever object they
are given, so these classes hash in Python and hand only the digest to the token: raw
``CKM_ECDSA`` for EC keys, ``CKM_RSA_PKCS`` over a DigestInfo or ``CKM_RSA_PKCS_PSS``
for RSA keys. Nothing here can reveal the private key.
"""

from __future__ import annotations

import math
from typing import Any, NoReturn, Protocol, Self

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.utils import Buffer
from pkcs11 import MGF, Mechanism

from scm.keys.errors import KeyFormatError


class TokenSigning(Protocol):
    """The one operation a token signer needs from its keystore."""

    def sign_raw(self, label: str, mechanism: Mechanism, data: bytes, param: Any = None) -> bytes:
        """Sign ``data`` (already a digest or DigestInfo) with the key ``label``."""
        ...


# DER prefixes of PKCS#1 v1.5 DigestInfo per hash (RFC 8017, section 9.2, note 1).
_DIGEST_INFO_PREFIX = {
    "sha224": bytes.fromhex("302d300d06096086480165030402040500041c"),
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}
_PKCS11_HASH = {
    "sha224": (Mechanism.SHA224, MGF.SHA224),
    "sha256": (Mechanism.SHA256, MGF.SHA256),
    "sha384": (Mechanism.SHA384, MGF.SHA384),
    "sha512": (Mechanism.SHA512, MGF.SHA512),
}


# Prehashed shows only its digest size publicly; the token signs SHA-2 digests, and among
# them the size names the hash.
_SHA2_BY_DIGEST_SIZE: dict[int, hashes.HashAlgorithm] = {
    28: hashes.SHA224(),
    32: hashes.SHA256(),
    48: hashes.SHA384(),
    64: hashes.SHA512(),
}


def _digest(data: bytes, algorithm: Any) -> tuple[bytes, hashes.HashAlgorithm]:
    """(digest, hash algorithm) for ``data``, which is already a digest when Prehashed."""
    if isinstance(algorithm, utils.Prehashed):
        if algorithm.digest_size not in _SHA2_BY_DIGEST_SIZE:
            raise TypeError(f"unsupported prehashed digest size {algorithm.digest_size}")
        if len(data) != algorithm.digest_size:
            raise ValueError("the prehashed data does not match the hash algorithm's size")
        return data, _SHA2_BY_DIGEST_SIZE[algorithm.digest_size]
    if not isinstance(algorithm, hashes.HashAlgorithm):
        raise TypeError(f"unsupported hash algorithm {algorithm!r}")
    hasher = hashes.Hash(algorithm)
    hasher.update(data)
    return hasher.finalize(), algorithm


def _no_private_material(what: str) -> NoReturn:
    raise KeyFormatError(f"the private key is inside the token: its {what} cannot be read")


class _InToken:
    """What EC and RSA token keys share: a label, no private bytes, nothing to copy."""

    _label: str

    @property
    def label(self) -> str:
        return self._label

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        _no_private_material("bytes")

    def __copy__(self) -> Self:
        return self  # the key is a handle on the token: copies would share it anyway

    def __deepcopy__(self, memo: dict[int, object]) -> Self:
        return self


class TokenEllipticCurveKey(_InToken, ec.EllipticCurvePrivateKey):
    """An EC private key in a token, usable wherever ``cryptography`` wants one to sign."""

    def __init__(self, token: TokenSigning, label: str, public: ec.EllipticCurvePublicKey):
        self._token = token
        self._label = label
        self._public = public

    def sign(self, data: Buffer, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise TypeError("only ECDSA signatures are supported")
        digest, _ = _digest(bytes(data), signature_algorithm.algorithm)
        raw = self._token.sign_raw(self._label, Mechanism.ECDSA, digest)
        half = len(raw) // 2
        r, s = int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
        return utils.encode_dss_signature(r, s)

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public.curve

    @property
    def key_size(self) -> int:
        return self._public.curve.key_size

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        raise TypeError("token keys are for signing only")

    def private_numbers(self) -> ec.EllipticCurvePrivateNumbers:
        _no_private_material("numbers")


class TokenRSAKey(_InToken, rsa.RSAPrivateKey):
    """An RSA private key in a token: PKCS#1 v1.5 and PSS signatures."""

    def __init__(self, token: TokenSigning, label: str, public: rsa.RSAPublicKey):
        self._token = token
        self._label = label
        self._public = public

    def sign(
        self,
        data: Buffer,
        padding: padding.AsymmetricPadding,
        algorithm: utils.Prehashed | hashes.HashAlgorithm | utils.NoDigestInfo,
    ) -> bytes:
        if isinstance(algorithm, utils.NoDigestInfo):
            if not isinstance(padding, _padding.PKCS1v15):
                raise TypeError("NoDigestInfo needs PKCS#1 v1.5 padding")
            return self._token.sign_raw(self._label, Mechanism.RSA_PKCS, bytes(data))
        digest, hash_algorithm = _digest(bytes(data), algorithm)
        if hash_algorithm.name not in _DIGEST_INFO_PREFIX:
            raise TypeError(f"unsupported hash algorithm {hash_algorithm.name}")
        if isinstance(padding, _padding.PKCS1v15):
            digest_info = _DIGEST_INFO_PREFIX[hash_algorithm.name] + digest
            return self._token.sign_raw(self._label, Mechanism.RSA_PKCS, digest_info)
        if isinstance(padding, _padding.PSS):
            return self._sign_pss(padding, digest, hash_algorithm)
        raise TypeError(f"unsupported padding {padding.name}")

    def _sign_pss(
        self, pss: padding.PSS, digest: bytes, hash_algorithm: hashes.HashAlgorithm
    ) -> bytes:
        salt_length = _pss_salt_length(pss, hash_algorithm, self.key_size)
        hash_mechanism, mgf_id = _PKCS11_HASH[hash_algorithm.name]
        return self._token.sign_raw(
            self._label, Mechanism.RSA_PKCS_PSS, digest, (hash_mechanism, mgf_id, salt_length)
        )

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def decrypt(self, ciphertext: bytes, padding: padding.AsymmetricPadding) -> bytes:
        raise TypeError("token keys are for signing only")

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        _no_private_material("numbers")


# The ``padding`` parameter name (fixed by the interface) shadows the module inside sign().
_padding = padding


def _pss_salt_length(pss: padding.PSS, hash_algorithm: hashes.HashAlgorithm, key_size: int) -> int:
    """The salt length ``pss`` asks for, found through PSS's public equality.

    PSS keeps its MGF's hash and its salt length private; comparing it with the paddings
    this signer can honour needs only public API.
    """
    mgf = padding.MGF1(hash_algorithm)
    if pss.mgf != mgf:
        raise TypeError("PSS needs MGF1 with the signature's hash algorithm")
    maximum = math.ceil((key_size - 1) / 8) - hash_algorithm.digest_size - 2
    named = (
        (padding.PSS.MAX_LENGTH, maximum),
        (padding.PSS.AUTO, maximum),
        (padding.PSS.DIGEST_LENGTH, hash_algorithm.digest_size),
    )
    for salt, length in named:
        if pss == padding.PSS(mgf, salt):
            return length
    for length in range(maximum + 1):
        if pss == padding.PSS(mgf, length):
            return length
    raise TypeError(f"PSS salt length over the {maximum} bytes a {key_size}-bit key allows")
