"""`scm image check` on images crafted to make the checker read what it must not."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from scm.errors import InputError, NotFoundError
from scm.image.check import check_image
from scm.image.errors import ImageBuildError
from scm.image.imagefile import open_image
from scm.image.tools import Limits, probe, run

SECRET = b"host-secret-4f1d9c: must never reach the report\n"


def qemu_img(*argv: object) -> None:
    subprocess.run(["qemu-img", *map(str, argv)], check=True, capture_output=True)


def test_backing_file_is_refused_and_never_read(tmp_path, make_disk):
    # The "host file" is a real GPT disk, so following it would give a plausible report.
    target = make_disk("host-disk.raw")
    with target.open("r+b") as handle:
        handle.seek(0, os.SEEK_END)
        handle.write(SECRET)
    overlay = tmp_path / "overlay.qcow2"
    qemu_img("create", "-f", "qcow2", "-F", "raw", "-b", target, overlay)
    with pytest.raises(InputError, match="backing file") as caught:
        check_image(overlay, "tdx")
    assert SECRET.decode().strip() not in str(caught.value)


def test_backing_file_by_json_filename_is_refused(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_bytes(SECRET)
    overlay = tmp_path / "overlay.qcow2"
    qemu_img(
        "create",
        "-f",
        "qcow2",
        "-u",
        "-F",
        "raw",
        "-b",
        f'json:{{"file.filename": "{secret}"}}',
        overlay,
        "1M",
    )
    with pytest.raises(InputError, match="backing file"):
        open_image(overlay)


def test_external_data_file_is_refused(tmp_path):
    secret = tmp_path / "secret.raw"
    secret.write_bytes(SECRET + bytes(1 << 20))
    image = tmp_path / "data-file.qcow2"
    qemu_img("create", "-f", "qcow2", "-o", f"data_file={secret},data_file_raw=on", image, "1M")
    with pytest.raises(InputError, match="external data file"):
        check_image(image, "tdx")


def test_64_tib_qcow2_is_refused_before_converting(tmp_path):
    huge = tmp_path / "huge.qcow2"
    qemu_img("create", "-f", "qcow2", huge, "64T")
    with pytest.raises(InputError, match=r"64\.0 TiB.*over the 1 TiB"):
        check_image(huge, "tdx")
    assert not list(tmp_path.glob("scm-image-check-*"))


def test_large_sparse_raw_is_refused(tmp_path):
    raw = tmp_path / "sparse.raw"
    with raw.open("wb") as handle:
        handle.truncate(2 << 40)
    with pytest.raises(InputError, match="virtual size"):
        check_image(raw, "tdx")


def test_dev_zero_is_not_a_regular_file():
    with pytest.raises(InputError, match="not a regular file"):
        check_image(Path("/dev/zero"), "tdx")


def test_a_missing_image_is_named(tmp_path):
    with pytest.raises(NotFoundError, match="does not exist"):
        check_image(tmp_path / "absent.qcow2", "tdx")


@pytest.mark.timeout(60)
def test_fifo_does_not_hang(tmp_path):
    fifo = tmp_path / "guest.raw"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        check_image(fifo, "tdx")


def test_format_comes_from_magic_bytes_not_the_name(tmp_path):
    # A VMDK named .raw is refused, not probed by qemu-img.
    vmdk = tmp_path / "guest.raw"
    qemu_img("create", "-f", "vmdk", vmdk, "1M")
    with pytest.raises(InputError, match="VMDK"):
        open_image(vmdk)


def test_raw_that_looks_like_nothing_is_read_as_raw(tmp_path):
    raw = tmp_path / "guest.img"
    raw.write_bytes(bytes(1 << 20))
    image = open_image(raw)
    assert (image.format, image.virtual_size) == ("raw", 1 << 20)


def test_tools_run_with_a_timeout():
    never = Limits(timeout=0.5)
    with pytest.raises(ImageBuildError, match=r"sleep did not finish in 0\.5 s"):
        run("wait", ["sleep", "30"], limits=never)
    with pytest.raises(ImageBuildError, match="did not finish"):
        probe("wait", ["sleep", "30"], limits=never)


def test_tools_run_with_resource_limits(tmp_path):
    # A program that writes past its file-size limit is stopped, and the step says so.
    small = Limits(timeout=60, file_size=4096)
    target = tmp_path / "big"
    with pytest.raises(ImageBuildError, match="dd"):
        run("write", ["dd", "if=/dev/zero", f"of={target}", "bs=64k", "count=1"], limits=small)
    assert target.stat().st_size <= 4096
