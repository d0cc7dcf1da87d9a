"""One logged-in PKCS#11 session: the lock, login, re-opening, handles and errors.

Every call into the module runs under the process's PKCS#11 lock (see
:mod:`scm.keys.token_lock`), on the calling thread, over one read/write session. The
session is re-opened once when the token reports it lost (a restarted token, a closed
session). Private-key handles are cached by label for signing; a handle another process
invalidated (the key deleted and re-imported) is dropped and looked up again. Token
errors leave as :class:`TokenUnavailableError` with what to do, never as raw PKCS#11.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pkcs11
from pkcs11 import Attribute, Mechanism, ObjectClass

from scm.keys import library
from scm.keys.errors import KeyNotFoundError, TokenLoginError, TokenUnavailableError
from scm.keys.token_lock import pkcs11_lock

if TYPE_CHECKING:
    from pkcs11._pkcs11 import lib as Library

log = logging.getLogger(__name__)
R = TypeVar("R")

# Errors after which the session is re-opened and the call tried once more.
_SESSION_LOST = (
    pkcs11.SessionClosed,
    pkcs11.SessionHandleInvalid,
    pkcs11.DeviceRemoved,
    pkcs11.TokenNotPresent,
    pkcs11.UserNotLoggedIn,
)


class TokenSession:
    """A logged-in session with one token, and the cache of its private-key handles."""

    def __init__(
        self, module: str, token_label: str, pin: str, softhsm_conf: Path | None = None
    ) -> None:
        self.module = module
        self.token_label = token_label
        self._pin = pin
        self._softhsm_conf = softhsm_conf
        self._lock = pkcs11_lock()
        self._lib: Library | None = None
        self._session: pkcs11.Session | None = None
        self._private_keys: dict[str, pkcs11.SignMixin] = {}
        self.mechanisms: set[Mechanism] = set()
        self.slot: pkcs11.Slot | None = None
        self._closed = False
        self._lock.run(self._open)

    @property
    def location(self) -> str:
        return f"pkcs11:{self.token_label}"

    @property
    def session(self) -> pkcs11.Session:
        """The live session; only valid inside :meth:`run`."""
        assert self._session is not None
        return self._session

    def run(self, fn: Callable[..., R], *args: Any) -> R:
        """Run ``fn(*args)`` under the lock with a live session, translating token errors."""
        return self._lock.run(self._guarded, fn, *args)

    def close(self) -> None:
        if not self._closed:
            self._lock.run(self._close)

    # -- lookups (call inside run) --------------------------------------------------------

    def objects(self, object_class: ObjectClass, **attrs: Any) -> builtins.list[pkcs11.Object]:
        template: dict[Attribute, Any] = {Attribute.CLASS: object_class}
        template.update({getattr(Attribute, name.upper()): value for name, value in attrs.items()})
        return list(self.session.get_objects(template))

    def private_key(self, label: str, *, cached: bool = True) -> pkcs11.SignMixin:
        """The private key labelled ``label``; ``cached=False`` asks the token afresh."""
        if cached and (hit := self._private_keys.get(label)) is not None:
            return hit
        found = self.objects(ObjectClass.PRIVATE_KEY, label=label)
        if not found:
            self._private_keys.pop(label, None)
            raise KeyNotFoundError(f"no key labelled {label!r} in {self.location}")
        key = found[0]
        assert isinstance(key, pkcs11.SignMixin)
        self._private_keys[label] = key
        return key

    def forget(self, *labels: str) -> None:
        """Drop cached handles (after a delete or rename)."""
        for label in labels:
            self._private_keys.pop(label, None)

    # -- session handling (under the lock) -----------------------------------------------

    def _open(self) -> None:
        for attempt in range(_TOKEN_READ_RETRIES):
            self._lib = library.acquire(self.module, self._softhsm_conf)
            try:
                self._login(self._lib)
                return
            except _TokenInFlux as exc:
                library.release(self.module)
                last = attempt == _TOKEN_READ_RETRIES - 1
                # SoftHSM2 reads its token list once per initialisation: look again only
                # through a fresh one, which no other keystore of this process may be using.
                if last or not library.reinitialize_if_unused(self.module):
                    raise exc.error from None
                time.sleep(min(0.02 * 2**attempt, 0.5))
            except BaseException:
                library.release(self.module)
                raise

    def _login(self, lib: Library) -> None:
        try:
            token = lib.get_token(token_label=self.token_label)
        except pkcs11.NoSuchToken:
            raise _TokenInFlux(
                TokenUnavailableError(
                    f"no token labelled {self.token_label!r} in PKCS#11 module {self.module}"
                )
            ) from None
        except pkcs11.GeneralError:
            raise _TokenInFlux(
                TokenUnavailableError(f"cannot read token {self.token_label!r}: GeneralError")
            ) from None
        except pkcs11.MultipleTokensReturned:
            raise TokenUnavailableError(
                f"more than one token is labelled {self.token_label!r} in {self.module}"
            ) from None
        try:
            self._session = token.open(rw=True, user_pin=self._pin)
        except pkcs11.UserAlreadyLoggedIn:
            # PKCS#11 logins are per process: another session of ours logged in already.
            self._session = token.open(rw=True)
        except (pkcs11.PinIncorrect, pkcs11.PinInvalid, pkcs11.PinLenRange):
            raise TokenLoginError(
                f"the PIN for token {self.token_label!r} was rejected (wrong PIN)"
            ) from None
        except pkcs11.PinLocked:
            raise TokenLoginError(f"the PIN of token {self.token_label!r} is locked") from None
        except pkcs11.GeneralError:
            raise _TokenInFlux(
                TokenUnavailableError(f"cannot open token {self.token_label!r}: GeneralError")
            ) from None
        except pkcs11.PKCS11Error as exc:
            raise TokenUnavailableError(
                f"cannot open token {self.token_label!r}: {type(exc).__name__}"
            ) from None
        self.slot = token.slot
        self.mechanisms = set(token.slot.get_mechanisms())

    def _reopen(self) -> None:
        log.warning("PKCS#11 session with token %r was lost; re-opening it", self.token_label)
        self._close_session()
        assert self._lib is not None
        try:
            self._login(self._lib)
        except _TokenInFlux as exc:
            raise exc.error from None

    def _close_session(self) -> None:
        self._private_keys.clear()
        if self._session is not None:
            with contextlib.suppress(pkcs11.PKCS11Error):  # the token may be gone already
                self._session.close()
            self._session = None

    def _close(self) -> None:
        self._closed = True
        self._close_session()
        library.release(self.module)

    def _guarded(self, fn: Callable[..., R], *args: Any) -> R:
        if self._closed or self._session is None:
            raise TokenUnavailableError(f"the keystore for token {self.token_label!r} is closed")
        try:
            try:
                return fn(*args)
            except pkcs11.ObjectHandleInvalid:
                # Another process deleted or replaced an object we held a handle to.
                self._private_keys.clear()
                return fn(*args)
            except _SESSION_LOST:
                self._reopen()
                return fn(*args)
        except pkcs11.PKCS11Error as exc:
            raise self._refusal(exc) from exc

    def _refusal(self, exc: pkcs11.PKCS11Error) -> TokenUnavailableError:
        what = type(exc).__name__
        tokens_dir = self._softhsm_conf.parent if self._softhsm_conf else None
        if tokens_dir is not None and _no_space(tokens_dir):
            return TokenUnavailableError(
                f"no space left on the state directory holding token {self.token_label!r} "
                f"({tokens_dir}): free some space and run it again ({what})"
            )
        if tokens_dir is not None and not os.access(tokens_dir / "tokens", os.W_OK):
            return TokenUnavailableError(
                f"token {self.token_label!r} in {tokens_dir} is read-only for this user: "
                f"commands that change keys cannot run ({what})"
            )
        return TokenUnavailableError(f"token {self.token_label!r} refused the operation: {what}")


def _no_space(directory: Path) -> bool:
    try:
        stats = os.statvfs(directory)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < 64 * 1024


# While another process rewrites a SoftHSM2 token's files, C_GetTokenInfo may answer
# CKR_GENERAL_ERROR, the slot may list no token at all, or C_OpenSession may fail (all seen
# with eight `scm keys generate` at once): a transient state, so the token is looked for
# again, through a fresh initialisation, for about 1.6 s before the error counts. A token
# that really is missing costs that wait once.
_TOKEN_READ_RETRIES = 8


class _TokenInFlux(Exception):
    """The token could not be read; maybe another process is rewriting it."""

    def __init__(self, error: TokenUnavailableError) -> None:
        super().__init__(str(error))
        self.error = error
