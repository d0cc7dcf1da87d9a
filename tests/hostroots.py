"""Copies of the fixture host roots (tests/fixtures/hosts), safe for a test to change."""

from __future__ import annotations

import shutil
from pathlib import Path

HOSTS = Path(__file__).parent / "fixtures" / "hosts"
HOST_NAMES = sorted(p.name for p in HOSTS.iterdir() if (p / "root").is_dir())


def materialize(name: str, destination: Path) -> Path:
    """Copy fixture host ``name`` below ``destination`` and return the root to inspect."""
    root = destination / name
    shutil.copytree(HOSTS / name / "root", root)
    return root
