"""Runs tests/integration/openstack/ironic_plugins in a fresh interpreter (see conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SUITE = Path(__file__).parent / "ironic_plugins"


def test_ironic_hook_and_ipa_collector_suite_passes_in_its_own_process() -> None:
    env = dict(os.environ, SCM_IRONIC_SUITE="1")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", str(SUITE)],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).parents[3],
        timeout=240,
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    # Every test in the suite ran and passed: none skipped, none deselected.
    assert " passed" in summary and "skipped" not in summary and "deselected" not in summary
