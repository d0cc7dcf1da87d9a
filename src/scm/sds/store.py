"""The secret store: named credentials with versions, and who is watching each name.

Whatever issues or imports credentials calls :meth:`SecretStore.put`; every stream that
watches that name is told at once, and pushes the new Secret to its Envoy. A name the
store does not hold yet can be produced on demand by a :class:`CredentialProvider`
(the issuance layer: generate a key, get a certificate signed, return the credential).

Versions are derived from the content (certificate chain and key reference), so the
same credential has the same version after a restart and re-putting it changes
nothing, while any new certificate or key gives a new version.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from cryptography.hazmat.primitives import serialization

from scm.errors import NotFoundError
from scm.sds.credentials import Credential, HsmKey, SecretValue

log = logging.getLogger(__name__)


class UnknownSecretError(NotFoundError):
    """A secret name that the store does not hold and no provider can produce."""


@dataclass(frozen=True)
class StoredSecret:
    """One version of a named secret."""

    name: str
    version: str
    value: SecretValue
    updated_at: datetime.datetime


class SecretWatcher(Protocol):
    """Something (a stream) that wants to hear when a secret name changes."""

    def secret_changed(self, name: str) -> None: ...


class CredentialProvider(Protocol):
    """Produces a secret the first time a name is asked for (the issuance layer)."""

    async def provide(self, name: str) -> SecretValue | None:
        """The secret for ``name``, or None if this provider does not serve that name."""
        ...


class SecretStore:
    """Named secrets with content versions; notifies watchers of a name on change."""

    def __init__(self, provider: CredentialProvider | None = None) -> None:
        self._provider = provider
        self._secrets: dict[str, StoredSecret] = {}
        self._watchers: dict[str, set[SecretWatcher]] = {}
        self._pending: dict[str, asyncio.Future[StoredSecret]] = {}

    def put(self, name: str, value: SecretValue) -> StoredSecret:
        """Store ``value`` under ``name``; watchers hear of it if the content changed."""
        version = content_version(value)
        current = self._secrets.get(name)
        if current is not None and current.version == version:
            return current
        stored = StoredSecret(name, version, value, datetime.datetime.now(datetime.UTC))
        self._secrets[name] = stored
        log.info("secret %s now at version %s", name, version)
        self._notify(name)
        return stored

    def remove(self, name: str) -> None:
        """Forget ``name``; its watchers hear of it and stop serving it."""
        if self._secrets.pop(name, None) is not None:
            self._notify(name)

    def get(self, name: str) -> StoredSecret | None:
        return self._secrets.get(name)

    async def obtain(self, name: str) -> StoredSecret:
        """The secret for ``name``, asking the provider once if the store lacks it."""
        stored = self._secrets.get(name)
        if stored is not None:
            return stored
        if self._provider is None:
            raise UnknownSecretError(self._unknown_message(name))
        pending = self._pending.get(name)
        if pending is None:
            pending = asyncio.ensure_future(self._provide(name, self._provider))
            self._pending[name] = pending
            pending.add_done_callback(lambda _: self._pending.pop(name, None))
        # shield: one cancelled requester must not cancel issuance for the others
        return await asyncio.shield(pending)

    async def _provide(self, name: str, provider: CredentialProvider) -> StoredSecret:
        value = await provider.provide(name)
        if value is None:
            raise UnknownSecretError(self._unknown_message(name))
        return self.put(name, value)

    def _unknown_message(self, name: str) -> str:
        served = ", ".join(sorted(self._secrets)) or "none yet"
        return f"unknown secret {name!r} (served: {served})"

    def __iter__(self) -> Iterator[StoredSecret]:
        return iter(sorted(self._secrets.values(), key=lambda s: s.name))

    def __len__(self) -> int:
        return len(self._secrets)

    def watch(self, name: str, watcher: SecretWatcher) -> None:
        self._watchers.setdefault(name, set()).add(watcher)

    def unwatch(self, name: str, watcher: SecretWatcher) -> None:
        watchers = self._watchers.get(name)
        if watchers is not None:
            watchers.discard(watcher)
            if not watchers:
                del self._watchers[name]

    def watcher_count(self, name: str) -> int:
        return len(self._watchers.get(name, ()))

    def _notify(self, name: str) -> None:
        for watcher in list(self._watchers.get(name, ())):
            watcher.secret_changed(name)


def content_version(value: SecretValue) -> str:
    """A short digest of what a secret holds: certificates and key reference."""
    digest = hashlib.sha256()
    certificates = value.chain if isinstance(value, Credential) else value.certificates
    for certificate in certificates:
        digest.update(certificate.public_bytes(serialization.Encoding.DER))
    if isinstance(value, Credential):
        if isinstance(value.key, HsmKey):
            digest.update(f"hsm\0{value.key.token_label}\0{value.key.key_label}".encode())
        else:
            digest.update(b"inline\0" + value.key.pem)
    return digest.hexdigest()[:16]
