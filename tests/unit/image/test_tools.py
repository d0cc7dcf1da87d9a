"""Programs that read untrusted images run under kernel resource limits and a timeout."""

from __future__ import annotations

import pytest

from scm.image.errors import ImageBuildError
from scm.image.tools import GIB, READ_LIMITS, Limits, run


def test_a_reading_program_runs_under_the_read_limits() -> None:
    # ulimit reports what the kernel enforces on the program itself.
    address_kib = run("limits", ["sh", "-c", "ulimit -v"], limits=READ_LIMITS).strip()
    cpu = run("limits", ["sh", "-c", "ulimit -t"], limits=READ_LIMITS).strip()
    file_blocks = run("limits", ["sh", "-c", "ulimit -f"], limits=READ_LIMITS).strip()
    assert int(address_kib) * 1024 == 2 * GIB
    assert int(cpu) == 60
    assert int(file_blocks) * 512 == GIB


def test_a_program_over_its_file_size_limit_fails_with_one_line(tmp_path) -> None:
    tiny = Limits(timeout=60, file_size=4096)
    refused = r"^write failed: dd: killed by signal 25 \(a resource limit\?\)$"  # SIGXFSZ
    with pytest.raises(ImageBuildError, match=refused):
        run(
            "write",
            ["dd", "if=/dev/zero", f"of={tmp_path / 'out'}", "bs=64k", "count=1"],
            limits=tiny,
        )


def test_a_program_that_outlives_its_timeout_is_stopped() -> None:
    with pytest.raises(ImageBuildError, match=r"did not finish in 0\.5 s"):
        run("wait", ["sleep", "30"], limits=Limits(timeout=0.5))
