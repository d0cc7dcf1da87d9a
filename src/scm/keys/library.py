"""Loading PKCS#11 modules: once per process, and SoftHSM2's configuration with them.

A PKCS#11 module is initialised once per process, and SoftHSM2 reads ``SOFTHSM2_CONF``
at that moment. Keystores share a loaded module; one that needs SoftHSM2 pointed at
another token directory may re-initialise the module only while no other keystore uses it.
Call these functions only while holding the PKCS#11 lock.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pkcs11

from scm.keys.errors import TokenUnavailableError

if TYPE_CHECKING:
    from pkcs11._pkcs11 import lib as Library


@dataclass
class _Loaded:
    lib: Library
    softhsm_conf: Path | None
    users: int = 0


_loaded: dict[str, _Loaded] = {}


def acquire(module: str, softhsm_conf: Path | None) -> Library:
    """The initialised module at path ``module``, configured for ``softhsm_conf``."""
    entry = _loaded.get(module)
    if entry is not None and entry.softhsm_conf != softhsm_conf:
        if entry.users:
            raise TokenUnavailableError(
                f"PKCS#11 module {module} is in use with {entry.softhsm_conf} in this process; "
                "close that keystore first"
            )
        _set_conf(softhsm_conf)
        entry.lib.reinitialize()
        entry.softhsm_conf = softhsm_conf
    if entry is None:
        check_module(module)
        _set_conf(softhsm_conf)
        try:
            entry = _Loaded(pkcs11.lib(module), softhsm_conf)
        except pkcs11.PKCS11Error as exc:
            raise TokenUnavailableError(f"cannot load PKCS#11 module {module}: {exc}") from None
        _loaded[module] = entry
    entry.users += 1
    return entry.lib


def check_module(module: str) -> None:
    """A one-line error before anything else when the module file is missing."""
    if not Path(module).is_file():
        raise TokenUnavailableError(f"PKCS#11 module {module} does not exist")


def reinitialize_if_unused(module: str) -> bool:
    """Finalise and initialise ``module`` again so it re-reads its tokens; False if in use."""
    entry = _loaded.get(module)
    if entry is None or entry.users:
        return False
    entry.lib.reinitialize()
    return True


def release(module: str) -> None:
    """One keystore stopped using ``module``; it stays loaded for the next one."""
    entry = _loaded.get(module)
    if entry is not None and entry.users:
        entry.users -= 1


def _set_conf(softhsm_conf: Path | None) -> None:
    if softhsm_conf is not None:
        os.environ["SOFTHSM2_CONF"] = str(softhsm_conf)
