"""Renewal, jitter, backoff and key retirement on a fake clock: no real waiting."""

from __future__ import annotations

import asyncio
import errno
import logging
import random
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from scm.errors import UnavailableError
from scm.sds.credentials import DEFAULT
from scm.sds.issuer import IssuanceError
from scm.sds.renewal import Backoff, Renewer
from scm.sds.store import SecretStore
from tests.unit.sds.clocked import ClockCA, FakeClock, clocked_issuer

HOUR = 3600.0


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())  # type: ignore[arg-type]


def test_backoff_doubles_from_one_second_to_sixty_with_twenty_percent_jitter() -> None:
    exact = Backoff(uniform=lambda low, high: 1.0)
    assert [exact.delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert Backoff(uniform=lambda low, high: low).delay(3) == pytest.approx(3.2)
    assert Backoff(uniform=lambda low, high: high).delay(10) == pytest.approx(72)
    delays = [Backoff().delay(1) for _ in range(500)]
    assert all(0.8 <= d <= 1.2 for d in delays) and max(delays) - min(delays) > 0.2


def test_renewal_starts_when_half_the_lifetime_is_left_less_jitter(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        ca = ClockCA(clock)
        jitter = random.Random(7).random() * 0.05
        issuer = clocked_issuer(tmp_path, ca, clock, jitter_ratio=0.05, rng=random.Random(7))
        store = SecretStore(issuer)
        first = await store.obtain(DEFAULT)
        task = asyncio.create_task(Renewer(store, issuer).run())
        await clock.parked_now()
        # 24 h lifetime: renewal when 12 h are left, earlier by the jitter's share
        assert clock.requested == [pytest.approx(24 * HOUR * (0.5 - jitter), abs=0.01)]
        assert ca.signed == 1
        await clock.allow()
        renewed = store.get(DEFAULT)
        assert renewed is not None and renewed.version != first.version
        assert ca.signed == 2
        task.cancel()

    run(scenario)


def test_any_failure_is_counted_logged_once_per_cause_and_retried_with_backoff(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="scm.sds")

    async def scenario() -> None:
        clock = FakeClock()
        ca = ClockCA(clock)
        issuer = clocked_issuer(tmp_path, ca, clock)
        store = SecretStore(issuer)
        first = await store.obtain(DEFAULT)
        backoff = Backoff(uniform=lambda low, high: 1.0)
        task = asyncio.create_task(Renewer(store, issuer, backoff).run())
        await clock.parked_now()
        # a bug-like error (not an ScmError) and then a disk fault: renewal must survive both
        ca.down = RuntimeError("something unexpected")
        await clock.allow()  # to the renewal time: fails, backs off 1 s
        await clock.allow()  # fails again (same cause), backs off 2 s
        ca.down = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "sds"))
        await clock.allow()  # fails (new cause), backs off 4 s
        assert clock.requested[-3:] == [1.0, 2.0, 4.0]
        status = issuer.health.status()
        assert status["consecutive_failures"] == 3 and status["failures_total"] == 3
        assert status["last_error"].startswith("no space left on the state directory")
        assert status["next_retry"] is not None
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 2  # one per new cause, not per attempt
        assert "RuntimeError: something unexpected" in warnings[0]
        assert store.get(DEFAULT) == first  # still served meanwhile
        assert len(issuer.keys.keystore.list()) == 1  # no key left by a failed attempt
        ca.down = None
        await clock.allow()
        renewed = store.get(DEFAULT)
        assert renewed is not None and renewed.version != first.version
        assert issuer.health.status()["consecutive_failures"] == 0
        assert not task.done()
        task.cancel()

    run(scenario)


def test_old_keys_are_retired_once_their_certificate_expires_not_before(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        issuer = clocked_issuer(tmp_path, ClockCA(clock), clock)
        store = SecretStore(issuer)
        await store.obtain(DEFAULT)
        assert issuer.current is not None
        first_key, first_expiry = issuer.current.key_label, issuer.current.not_after
        task = asyncio.create_task(Renewer(store, issuer).run())
        await clock.parked_now()
        await clock.allow()  # renewed at half-life: both keys exist
        labels = {k.label for k in issuer.keys.keystore.list()}
        assert first_key in labels and len(labels) == 2
        second_key = issuer.current.key_label
        await clock.allow()  # the next wake is the first certificate's expiry
        assert clock.now() == first_expiry
        assert first_key not in {k.label for k in issuer.keys.keystore.list()}
        record = issuer.records.load(DEFAULT)
        # (the second certificate is half-way too: renewed, its key now waits in turn)
        assert record is not None and {r.key_label for r in record.retired} == {second_key}
        task.cancel()

    run(scenario)


def test_a_failed_record_write_deletes_the_new_key_and_says_the_disk_is_read_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        issuer = clocked_issuer(tmp_path, ClockCA(clock), clock)

        def read_only(path: Path, *_: object, **__: object) -> None:
            raise OSError(errno.EROFS, "Read-only file system", str(path))

        monkeypatch.setattr("scm.sds.records.write_atomic", read_only)
        with pytest.raises(IssuanceError) as failure:
            await issuer.obtain()
        assert isinstance(failure.value, UnavailableError)
        assert "read-only" in str(failure.value) and "default.json" in str(failure.value)
        assert issuer.keys.keystore.list() == []
        assert issuer.health.failures_total == 1

    run(scenario)


def test_a_record_for_another_identity_or_ca_is_reissued_and_its_key_retired(
    tmp_path: Path,
) -> None:
    from scm.pki import WorkloadIdentity

    async def scenario() -> None:
        clock = FakeClock()
        ca = ClockCA(clock)
        keystore = clocked_issuer(tmp_path, ca, clock).keys.keystore
        before = clocked_issuer(tmp_path, ca, clock, keystore=keystore)  # type: ignore[arg-type]
        first = await before.obtain()
        same = await clocked_issuer(tmp_path, ca, clock, keystore=keystore).obtain()  # type: ignore[arg-type]
        assert same.key_label == first.key_label  # reused when nothing changed

        other_sa = WorkloadIdentity("cluster.local", "shop", "checkout", ("localhost",))
        moved = await clocked_issuer(tmp_path, ca, clock, other_sa, keystore=keystore).obtain()  # type: ignore[arg-type]
        assert moved.key_label != first.key_label
        assert moved.spiffe_id == other_sa.spiffe_id
        assert first.key_label in {r.key_label for r in moved.retired}

        new_ca = ClockCA(clock, "re-initialised root")
        again = await clocked_issuer(tmp_path, new_ca, clock, other_sa, keystore=keystore).obtain()  # type: ignore[arg-type]
        assert again.key_label != moved.key_label
        assert again.chain[-1] == new_ca.certificate
        assert {r.key_label for r in again.retired} == {first.key_label, moved.key_label}

    run(scenario)
