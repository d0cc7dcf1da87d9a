"""Fixtures shared by every test domain."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.hostroots import materialize


@pytest.fixture
def host_root(tmp_path: Path) -> Callable[[str], Path]:
    """Return a function that copies a fixture host root (tests/fixtures/hosts) into tmp_path."""

    def make(name: str) -> Path:
        return materialize(name, tmp_path / "hosts")

    return make
