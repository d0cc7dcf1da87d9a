"""`scm image check` on real (small) disks, good and deliberately broken."""

from __future__ import annotations

import subprocess

from scm.image.check import check_image
from tests.unit.image.conftest import GOOD_KERNEL


def failed(report):
    return {f.subject: f.detail for f in report.findings if not f.ok and f.blocking}


def test_good_tdx_disk(make_disk):
    report = check_image(make_disk(), "tdx")
    assert report.good, report.to_text()
    assert report.kernel == GOOD_KERNEL
    assert report.cmdline is not None and report.cmdline.startswith("root=PARTUUID=")
    assert "console=ttyS0" in report.cmdline


def test_qcow2_is_read_like_raw(make_disk, tmp_path):
    raw = make_disk()
    qcow2 = tmp_path / "guest.qcow2"
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", raw, qcow2], check=True)
    report = check_image(qcow2, "tdx")
    assert report.format == "qcow2"
    assert report.good, report.to_text()


def test_missing_esp(make_disk):
    raw = make_disk()
    subprocess.run(["sfdisk", "--quiet", "--no-reread", "--delete", raw, "1"], check=True)
    report = check_image(raw, "tdx")
    assert "missing" in failed(report)["EFI system partition"]
    assert not report.good


def test_old_kernel_without_tdx(make_disk):
    report = check_image(make_disk(kernel="5.10.0-28-amd64", config="CONFIG_X86_SGX=y\n"), "tdx")
    assert "lacks CONFIG_INTEL_TDX_GUEST" in failed(report)["kernel"]


def test_missing_tdx_guest_module(make_disk):
    report = check_image(make_disk(module=False), "tdx")
    assert "has none" in failed(report)["tdx_guest"]


def test_sgx_needs_the_sgx_driver(make_disk):
    raw = make_disk(config="CONFIG_INTEL_TDX_GUEST=y\nCONFIG_TDX_GUEST_DRIVER=m\n")
    assert "lacks CONFIG_X86_SGX" in failed(check_image(raw, "sgx"))["kernel"]
    assert check_image(make_disk("sgx.raw"), "sgx").good


def test_not_a_disk(tmp_path):
    junk = tmp_path / "junk.raw"
    junk.write_bytes(bytes(1 << 20))
    report = check_image(junk, "tdx")
    assert "not a GPT" in failed(report)["partition table"]


def test_corrupt_gpt_is_named(make_disk):
    raw = make_disk()
    with raw.open("r+b") as handle:
        handle.seek(512 + 40)  # inside the header's first-usable-LBA field
        handle.write(b"\xff")
    report = check_image(raw, "tdx")
    assert "checksum" in failed(report)["partition table"]
