"""Finding and probing the Debian archive."""

from __future__ import annotations

import pytest

from scm.image.errors import ImageSpecError
from scm.image.sources import check_reachable, host_debian_mirror, validate_mirror


def test_deb822_and_one_line_sources(tmp_path):
    d = tmp_path / "sources.list.d"
    d.mkdir()
    (d / "other.sources").write_text("Types: deb\nURIs: https://example.invalid/node\n")
    (d / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example.invalid/debian/\nSuites: bookworm\n"
    )
    assert host_debian_mirror((d,)) == "http://mirror.example.invalid/debian"
    legacy = tmp_path / "sources.list"
    legacy.write_text(
        "# comment\ndeb [arch=amd64] http://old.example.invalid/debian bookworm main\n"
    )
    assert host_debian_mirror((tmp_path / "absent", legacy)) == "http://old.example.invalid/debian"
    assert host_debian_mirror((tmp_path / "absent",)) is None


def test_reachable_archive(archive):
    check_reachable(archive, "bookworm")
    with pytest.raises(ImageSpecError, match="has no trixie"):
        check_reachable(archive, "trixie")


def test_unreachable_archive_fails_fast():
    with pytest.raises(ImageSpecError, match="cannot reach the Debian archive"):
        check_reachable("http://127.0.0.1:9", "bookworm", timeout=5)


def test_mirror_must_be_a_url():
    with pytest.raises(ImageSpecError, match="must be an http"):
        validate_mirror("deb.example/debian")
