"""Keys scm made for records that do not exist are listed as orphans and pruned in one
command; keys under other labels are the user's and never touched."""

from __future__ import annotations

import json
from pathlib import Path

from tests.crash_harness import run_scm


def _states(state: Path) -> dict[str, str]:
    result = run_scm(state, "keys", "list", "--format", "json")
    assert result.returncode == 0, result.stderr
    return {entry["label"]: entry["state"] for entry in json.loads(result.stdout)}


def test_orphans_are_listed_and_pruned(tmp_path: Path) -> None:
    state = tmp_path / "state"
    # What an older scm's interrupted ca init and a switch of key mode left behind.
    for label in ("scm-ca", "sds-default-0123456789ab", "mine"):
        assert run_scm(state, "keys", "generate", label).returncode == 0
    assert _states(state) == {
        "mine": "user",
        "scm-ca": "orphan",
        "sds-default-0123456789ab": "orphan",
    }
    text = run_scm(state, "keys", "list").stdout
    assert "ORPHAN: remove with `scm keys prune`" in text

    refused = run_scm(state, "ca", "init")
    assert refused.returncode == 73 and "no CA uses it" in refused.stderr

    pruned = run_scm(state, "keys", "prune")
    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout.splitlines() == [
        "scm-ca: removed",
        "sds-default-0123456789ab: removed",
    ]
    assert _states(state) == {"mine": "user"}
    assert run_scm(state, "ca", "init").returncode == 0
    assert _states(state) == {"mine": "user", "scm-ca": "in use"}
    assert run_scm(state, "keys", "prune").stdout == "nothing to remove\n"
