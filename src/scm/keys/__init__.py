"""Where private keys live: a PKCS#11 token (SoftHSM2 by default) or process memory.

``open_keystore(settings)`` returns the configured token; ``Keystore.signer(label)``
gives a ``cryptography`` private key whose signatures are made inside the store, so
``cryptography``'s CSR and certificate builders work on keys that never leave it.
"""

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
from scm.keys.worker import pkcs11_worker

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
    "pkcs11_worker",
]
