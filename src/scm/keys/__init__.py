"""Where private keys live: a PKCS#11 token (SoftHSM2 by default) or process memory.

``open_keystore(settings)`` returns the configured token; ``Keystore.signer(label)``
gives a ``cryptography`` private key whose signatures are made inside the store, so
``cryptography``'s CSR and certificate builders work on keys that never leave it.

The names below load on first use: importing ``scm.keys`` (or one of its light
submodules) must not load python-pkcs11 and ``cryptography``, which would cost
``scm keys --help`` about 200 ms.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scm.keys.errors import (
        KeyExistsError,
        KeyFormatError,
        KeyNotFoundError,
        TokenLoginError,
        TokenUnavailableError,
    )
    from scm.keys.model import KeyInfo, Keystore, KeyType, Signer
    from scm.keys.open_store import open_keystore
    from scm.keys.pkcs11_store import Pkcs11Keystore
    from scm.keys.settings import PIN_ENV, KeysSettings
    from scm.keys.software import SoftwareKeystore
    from scm.keys.token_lock import pkcs11_lock

# Public name -> the submodule that defines it.
_EXPORTS = {
    "KeyExistsError": "errors",
    "KeyFormatError": "errors",
    "KeyNotFoundError": "errors",
    "TokenLoginError": "errors",
    "TokenUnavailableError": "errors",
    "KeyInfo": "model",
    "Keystore": "model",
    "KeyType": "model",
    "Signer": "model",
    "open_keystore": "open_store",
    "Pkcs11Keystore": "pkcs11_store",
    "PIN_ENV": "settings",
    "KeysSettings": "settings",
    "SoftwareKeystore": "software",
    "pkcs11_lock": "token_lock",
}

__all__ = [
    "PIN_ENV",
    "KeyExistsError",
    "KeyFormatError",
    "KeyInfo",
    "KeyNotFoundError",
    "KeyType",
    "KeysSettings",
    "Keystore",
    "Pkcs11Keystore",
    "Signer",
    "SoftwareKeystore",
    "TokenLoginError",
    "TokenUnavailableError",
    "open_keystore",
    "pkcs11_lock",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'scm.keys' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"scm.keys.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
