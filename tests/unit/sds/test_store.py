"""The secret store: content versions, watchers and on-demand issuance."""

from __future__ import annotations

import asyncio

import pytest

from scm.sds import SecretStore, UnknownSecretError
from scm.sds.credentials import SecretValue
from tests.certs import TestCA


class Recorder:
    def __init__(self) -> None:
        self.changes: list[str] = []

    def secret_changed(self, name: str) -> None:
        self.changes.append(name)


def test_versions_follow_content_and_watchers_hear_changes() -> None:
    ca = TestCA()
    store, watcher = SecretStore(), Recorder()
    store.watch("default", watcher)
    credential = ca.credential()
    first = store.put("default", credential)
    assert store.put("default", credential) is first  # same content: no change
    second = store.put("default", ca.credential())
    assert first.version != second.version
    assert SecretStore().put("default", credential).version == first.version  # restart-stable
    store.unwatch("default", watcher)
    store.remove("default")
    assert watcher.changes == ["default", "default"]


def test_provider_is_asked_once_for_concurrent_requests() -> None:
    ca = TestCA()
    calls: list[str] = []

    class Provider:
        async def provide(self, name: str) -> SecretValue | None:
            calls.append(name)
            await asyncio.sleep(0.01)
            return ca.credential() if name == "default" else None

    async def main() -> None:
        store = SecretStore(Provider())
        results = await asyncio.gather(*(store.obtain("default") for _ in range(5)))
        assert len({r.version for r in results}) == 1
        with pytest.raises(UnknownSecretError, match="unknown secret 'other'"):
            await store.obtain("other")

    asyncio.run(main())
    assert calls == ["default", "other"]
