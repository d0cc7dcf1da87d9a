"""``open_keystore``: the keystore the settings describe."""

from __future__ import annotations

from pathlib import Path

from scm.config import Settings
from scm.errors import ConfigError
from scm.keys.errors import TokenLoginError
from scm.keys.library import check_module
from scm.keys.pin_file import read_pin_file
from scm.keys.pkcs11_store import Pkcs11Keystore
from scm.keys.settings import PIN_ENV, SOFTHSM2_MODULE, KeysSettings
from scm.keys.softhsm import ensure_embedded_token


def open_keystore(settings: Settings) -> Pkcs11Keystore:
    """Open the PKCS#11 keystore of ``settings``; the embedded SoftHSM2 token by default.

    The PIN comes from ``SCM_PKCS11_PIN``, else ``keys.pin_file``, else (embedded token)
    the PIN file scm created with the token.
    """
    keys = settings.section("keys", KeysSettings)
    if not keys.token_label.strip():
        # An empty label would match SoftHSM2's uninitialised free slot.
        raise ConfigError("keys.token_label must not be empty")
    check_module(keys.pkcs11_module)
    pin = settings.environ.get(PIN_ENV) or (read_pin_file(keys.pin_file) if keys.pin_file else None)
    softhsm_conf = None
    if keys.embedded_token and Path(keys.pkcs11_module).name == Path(SOFTHSM2_MODULE).name:
        token = ensure_embedded_token(settings.state_dir, keys.token_label)
        softhsm_conf = token.conf
        pin = pin or read_pin_file(token.user_pin_file)
    if not pin:
        raise TokenLoginError(
            f"no PIN for token {keys.token_label!r}: set {PIN_ENV} or keys.pin_file"
        )
    return Pkcs11Keystore(
        keys.pkcs11_module, keys.token_label, pin, softhsm_conf, state_dir=settings.state_dir
    )
