"""One real SoftHSM2 token per test run, and a raw PKCS#11 view of it.

A PKCS#11 module is initialised once per process and SoftHSM2 reads its configuration
then, so the tests share one embedded token and tell keys apart by label.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pkcs11
import pytest

from scm.config import load_settings
from scm.keys import Pkcs11Keystore, open_keystore, pkcs11_worker
from scm.keys.settings import SOFTHSM2_MODULE
from scm.keys.softhsm import EmbeddedToken

R = TypeVar("R")


class RawToken:
    """python-pkcs11 directly on the token, bypassing scm, to check what the token holds."""

    def __init__(self, token: EmbeddedToken) -> None:
        self.embedded = token
        self._session = pkcs11_worker().run(self._open)

    def _open(self) -> pkcs11.Session:
        lib = pkcs11.lib(SOFTHSM2_MODULE)
        # scm's keystore logged the process in already (PKCS#11 logins are per process).
        return lib.get_token(token_label=self.embedded.label).open(rw=True)

    def run(self, fn: Callable[[pkcs11.Session], R]) -> R:
        return pkcs11_worker().run(fn, self._session)

    def objects(self, **attrs: Any) -> list[dict[str, Any]]:
        """Every object whose attributes match, as {class, label} dicts."""

        def query(session: pkcs11.Session) -> list[dict[str, Any]]:
            template = {getattr(pkcs11.Attribute, k.upper()): v for k, v in attrs.items()}
            return [
                {"class": o[pkcs11.Attribute.CLASS], "label": o[pkcs11.Attribute.LABEL]}
                for o in session.get_objects(template)
            ]

        return self.run(query)

    def private_key(self, label: str) -> pkcs11.Object:
        return self.run(
            lambda s: s.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, label=label)
        )


@functools.cache
def _shared() -> tuple[Path, Pkcs11Keystore, RawToken]:
    """The run's token; cached at module level so every conftest importing it shares it."""
    state_dir = Path(tempfile.mkdtemp(prefix="scm-token-"))
    store = open_keystore(load_settings(environ={"SCM_STATE_DIR": str(state_dir)}))
    raw = RawToken(EmbeddedToken(state_dir / "softhsm", "scm"))

    # The sessions end with the process (the worker stops before atexit handlers run).
    atexit.register(shutil.rmtree, state_dir, ignore_errors=True)
    return state_dir, store, raw


@pytest.fixture
def token_state_dir() -> Path:
    """The state directory holding the shared embedded token."""
    return _shared()[0]


@pytest.fixture
def token_keystore() -> Pkcs11Keystore:
    return _shared()[1]


@pytest.fixture
def raw_token() -> RawToken:
    return _shared()[2]


@pytest.fixture
def label() -> str:
    """A key label no other test uses."""
    return f"test-{uuid.uuid4().hex[:12]}"
