"""write_atomic makes both the file and its rename durable; disk errors say what to do."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from scm.files import storage_error, write_atomic


def test_write_atomic_fsyncs_the_file_and_then_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    write_atomic(tmp_path / "record.json", "{}\n")
    assert synced == ["file", "dir"]
    assert (tmp_path / "record.json").read_text() == "{}\n"
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


@pytest.mark.parametrize(
    ("code", "message"),
    [(errno.ENOSPC, "no space left on the state directory /s"), (errno.EROFS, "is read-only")],
)
def test_storage_errors_are_one_line_advice(code: int, message: str) -> None:
    error = storage_error(OSError(code, os.strerror(code), "/s/ca/ca.json"), Path("/s"))
    assert error is not None and error.exit_code == 78
    assert message in str(error) and "/s/ca/ca.json" in str(error) and "\n" not in str(error)


def test_other_os_errors_are_not_storage_errors() -> None:
    assert storage_error(OSError(errno.EIO, "I/O error")) is None
