"""Fixtures shared by every test domain."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.hostroots import materialize


@pytest.fixture
def host_root(tmp_path: Path) -> Callable[[str], Path]:
    """Return a function that copies a fixture host root (tests/fixtures/hosts) into tmp_path."""

    def make(name: str) -> Path:
        return materialize(name, tmp_path / "hosts")

    return make


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A temporary directory every user may enter, for a step a test runs as another user.

    pytest's tmp_path is root-only, and so may be the checkout itself (a clone in a private
    directory): what another user must reach goes here.
    """
    top = Path(tempfile.mkdtemp(prefix="scm-open-"))
    top.chmod(0o755)
    try:
        yield top
    finally:
        shutil.rmtree(top, ignore_errors=True)
