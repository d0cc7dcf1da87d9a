"""Files a user names are bounded: the size is checked before anything is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from scm.cli.main import main
from scm.errors import InputError
from scm.files import read_input


def sparse(path, size):
    with path.open("wb") as handle:
        handle.truncate(size)
    return path


@pytest.mark.timeout(60)
@pytest.mark.parametrize("command", ["show", "verify"])
def test_attest_refuses_a_huge_quote_without_reading_it(tmp_path, capsys, command):
    # 1 TiB of holes: reading it whole would never finish within the timeout.
    quote = sparse(tmp_path / "huge.quote", 1 << 40)
    argv = ["attest", command, str(quote)]
    if command == "verify":
        argv += ["--collateral", str(tmp_path / "collateral.json")]
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 65
    assert "more than the 262144 limit" in capsys.readouterr().err


def test_read_input_checks_size_first(tmp_path):
    with pytest.raises(InputError, match="1025 bytes, more than the 1024 limit"):
        read_input(sparse(tmp_path / "f", 1025), "file", limit=1024)
    assert read_input(sparse(tmp_path / "g", 1024), "file", limit=1024) == bytes(1024)


def test_read_input_bounds_what_is_not_a_regular_file(tmp_path):
    with pytest.raises(InputError, match="more than the 4096 bytes limit"):
        read_input(Path("/dev/zero"), "file", limit=4096)
