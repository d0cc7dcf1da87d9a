"""The ``[keys]`` settings table (``SCM_KEYS_*`` variables)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SOFTHSM2_MODULE = "/usr/lib/softhsm/libsofthsm2.so"

#: Environment variable holding the user PIN; PINs never come from command-line arguments.
PIN_ENV = "SCM_PKCS11_PIN"


@dataclass(frozen=True)
class KeysSettings:
    """Which PKCS#11 module and token hold scm's keys.

    With the defaults, scm creates a SoftHSM2 token under ``<state dir>/softhsm`` on first
    use (``embedded_token``). For another module (the SGX Crypto API Toolkit's
    ``libp11sgx.so``) set ``pkcs11_module``, ``token_label``, ``embedded_token = false``
    and give the PIN in ``pin_file`` or ``SCM_PKCS11_PIN``.
    """

    pkcs11_module: str = SOFTHSM2_MODULE
    token_label: str = "scm"
    pin_file: Path | None = None
    embedded_token: bool = True
