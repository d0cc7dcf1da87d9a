"""The single-use nonce ledger: replays refused across instances, processes and restarts."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from scm.pki.nonce_ledger import NonceLedger, NonceLedgerFull

NOW = 1_700_000_000.0
WINDOW = 900.0


def test_a_nonce_is_accepted_once_until_it_expires(tmp_path: Path) -> None:
    ledger = NonceLedger.in_state_dir(tmp_path)
    assert ledger.claim(b"n1", NOW + WINDOW, NOW)
    assert not ledger.claim(b"n1", NOW + WINDOW, NOW + 10)
    # Once its evidence is stale the record goes (the freshness check refuses it anyway).
    assert ledger.claim(b"n1", NOW + 3 * WINDOW, NOW + 2 * WINDOW)


def test_the_record_survives_a_restart_and_is_shared(tmp_path: Path) -> None:
    first, second = NonceLedger.in_state_dir(tmp_path), NonceLedger.in_state_dir(tmp_path)
    assert first.claim(b"a", NOW + WINDOW, NOW)
    assert second.claim(b"b", NOW + WINDOW, NOW)
    assert not second.claim(b"a", NOW + WINDOW, NOW)
    assert not first.claim(b"b", NOW + WINDOW, NOW)
    restarted = NonceLedger.in_state_dir(tmp_path)
    assert not restarted.claim(b"a", NOW + WINDOW, NOW + 1)


def test_a_full_ledger_refuses_instead_of_forgetting(tmp_path: Path) -> None:
    ledger = NonceLedger.in_state_dir(tmp_path, capacity=3)
    for i in range(3):
        assert ledger.claim(bytes([i]), NOW + WINDOW, NOW)
    with pytest.raises(NonceLedgerFull):
        ledger.claim(b"x", NOW + WINDOW, NOW)
    assert not ledger.claim(bytes([0]), NOW + WINDOW, NOW)
    # Room again once the window has passed.
    assert ledger.claim(b"x", NOW + 2 * WINDOW, NOW + WINDOW + 1)


def test_compaction_keeps_live_nonces_and_bounds_the_file(tmp_path: Path) -> None:
    writer, reader = NonceLedger.in_state_dir(tmp_path), NonceLedger.in_state_dir(tmp_path)
    assert reader.claim(b"live", NOW + 100 * WINDOW, NOW)
    for i in range(3000):
        t = NOW + i
        assert writer.claim(i.to_bytes(4, "big"), t + 1, t)
    size = (tmp_path / "attestation-nonces").stat().st_size
    assert size < 1100 * 76  # rewritten: not 3000 lines
    assert not writer.claim(b"live", NOW + WINDOW, NOW + 3000)
    # The other instance notices the rewritten file.
    assert not reader.claim(b"live", NOW + WINDOW, NOW + 3000)
    assert not reader.claim((2999).to_bytes(4, "big"), NOW + 4000, NOW + 2999)


def test_a_line_cut_short_by_a_crash_is_skipped(tmp_path: Path) -> None:
    ledger = NonceLedger.in_state_dir(tmp_path)
    assert ledger.claim(b"a", NOW + WINDOW, NOW)
    with (tmp_path / "attestation-nonces").open("ab") as f:
        f.write(b"17000009")  # a crash mid-append
    after = NonceLedger.in_state_dir(tmp_path)
    assert not after.claim(b"a", NOW + WINDOW, NOW)
    assert after.claim(b"b", NOW + WINDOW, NOW)
    assert not NonceLedger.in_state_dir(tmp_path).claim(b"b", NOW + WINDOW, NOW)


def _claim_in_process(state: str, nonce: bytes, results: multiprocessing.Queue[bool]) -> None:
    results.put(NonceLedger.in_state_dir(Path(state)).claim(nonce, NOW + WINDOW, NOW))


def test_concurrent_processes_let_exactly_one_claim_win(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[bool] = ctx.Queue()
    procs = [
        ctx.Process(target=_claim_in_process, args=(str(tmp_path), b"same", results))
        for _ in range(6)
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=120)
    assert sorted(outcomes) == [False] * 5 + [True]


def test_without_a_state_directory_replays_are_refused_in_process() -> None:
    ledger = NonceLedger(None)
    assert ledger.claim(b"a", NOW + WINDOW, NOW)
    assert not ledger.claim(b"a", NOW + WINDOW, NOW)


def test_the_state_directory_is_made_when_missing(tmp_path: Path) -> None:
    ledger = NonceLedger.in_state_dir(tmp_path / "new" / "state")
    assert ledger.claim(b"a", NOW + WINDOW, NOW)
    assert not NonceLedger.in_state_dir(tmp_path / "new" / "state").claim(b"a", NOW + WINDOW, NOW)
