"""A failed build says which step failed and why, and leaves nothing behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scm.image.build import ImageSettings, build_image
from scm.image.disk import MIB, make_ext4
from scm.image.errors import ImageBuildError, ImageSpecError
from scm.image.spec import make_spec

SCM = str(Path(sys.executable).parent / "scm")


def test_failed_bootstrap_leaves_no_output(tmp_path, archive):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    cache = tmp_path / "cache"
    spec = make_spec("tdx", "bookworm", "4G", out_dir / "guest.qcow2")
    progress: list[str] = []
    with pytest.raises(ImageBuildError, match=r"bootstrap \(mmdebstrap\) failed"):
        build_image(spec, archive, ImageSettings(cache_dir=cache), progress.append)
    assert list(out_dir.iterdir()) == []
    assert list(cache.iterdir()) == []
    assert progress[0] == "[1/7] root filesystem..."


def test_root_filesystem_too_big_for_the_disk(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "big").write_bytes(b"\1" * (40 * MIB))
    with pytest.raises(ImageSpecError, match=r"needs about 40 MiB .* use --size 1G or more"):
        make_ext4(tmp_path / "root.img", tree, 32 * MIB)


def scm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SCM, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["image", "build", "--tee", "tdx", "--release", "sid"], "Invalid value for '--release'"),
        (["image", "build", "--tee", "tdx", "--size", "1G"], "too small"),
        (["image", "build", "--tee", "tdx", "--user", "ops"], "go together"),
        (["image", "build", "--tee", "tdx", "--mirror", "ftp://x/debian"], "must be an http"),
        (["image", "check", "/does/not/exist.qcow2"], "does not exist"),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path, args, message):
    result = subprocess.run([SCM, *args], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_cli_existing_output(tmp_path):
    out = tmp_path / "guest.qcow2"
    out.write_text("precious")
    result = scm("image", "build", "--tee", "tdx", "--output", str(out))
    assert result.returncode != 0 and "exists" in result.stderr
    assert out.read_text() == "precious"


def test_cli_check_exit_status(make_disk):
    good = scm("image", "check", str(make_disk()))
    assert good.returncode == 0, good.stdout
    broken = scm("image", "check", str(make_disk("old.raw", module=False)), "--format", "json")
    assert broken.returncode == 1
    assert '"good": false' in broken.stdout
