"""Staging labels: who made them, and when they count as abandoned (clock injected)."""

from __future__ import annotations

import os

from scm.keys import staging


def test_label_names_this_process_and_fits_a_pkcs11_label() -> None:
    label = staging.new_label(clock=lambda: 1_800_000_000)
    assert staging.is_staging(label) and not staging.is_staging("web")
    assert label.startswith(f"{staging.PREFIX}{os.getpid()}-1800000000-")
    assert len(label) <= 64


def test_live_maker_within_a_minute_is_left_alone() -> None:
    label = staging.new_label(clock=lambda: 1000)
    assert not staging.is_abandoned(
        label, clock=lambda: 1000 + staging.MAX_AGE, alive=lambda _: True
    )


def test_older_than_a_minute_is_abandoned_even_if_the_pid_lives() -> None:
    label = staging.new_label(clock=lambda: 1000)
    assert staging.is_abandoned(label, clock=lambda: 1001 + staging.MAX_AGE, alive=lambda _: True)


def test_dead_maker_is_abandoned_at_once() -> None:
    label = staging.new_label(clock=lambda: 1000)
    assert staging.is_abandoned(label, clock=lambda: 1000, alive=lambda _: False)


def test_a_malformed_staging_label_is_abandoned() -> None:
    assert staging.is_abandoned(f"{staging.PREFIX}garbage")
