"""Host roots that are hostile or broken: discovery ends, says what is wrong, and stays short."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scm.cli.main import main
from scm.platform import discover
from scm.platform.discover import MAX_DIAGNOSTICS

FIFO_PATHS = [
    "proc/cpuinfo",
    "dev/cpu/0/cpuid",
    "sys/devices/system/node/node0/x86/sgx_total_bytes",
    "sys/module/kvm_intel/parameters/sgx",
    "sys/fs/cgroup/misc.capacity",
]


def plant_fifo(root: Path, relative: str) -> None:
    target = root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    os.mkfifo(target)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("relative", FIFO_PATHS)
def test_a_fifo_in_the_tree_does_not_hang(host_root, relative):
    root = host_root("sgx-2socket")
    plant_fifo(root, relative)
    report = discover(root)
    assert any(f"/{relative} is not a regular file" in d for d in report.diagnostics), (
        report.diagnostics
    )


@pytest.mark.timeout(60)
def test_every_file_a_fifo_still_ends(host_root):
    root = host_root("sgx-2socket")
    for relative in FIFO_PATHS:
        plant_fifo(root, relative)
    report = discover(root)
    assert sum("not a regular file" in d for d in report.diagnostics) == len(FIFO_PATHS)


def test_garbage_cpuid_dump_gives_a_few_grouped_diagnostics(host_root):
    root = host_root("sgx-2socket")
    (root / "dev/cpu/0/cpuid").write_bytes(os.urandom(512 * 1024))
    report = discover(root)
    assert len(report.diagnostics) <= MAX_DIAGNOSTICS
    assert any("more lines are not cpuid -r records" in d for d in report.diagnostics)


def add_nodes(root: Path, count: int, value: str) -> None:
    """NUMA nodes 2.. with an EPC file holding ``value`` ({node} is the node number)."""
    for node in range(2, 2 + count):
        target = root / f"sys/devices/system/node/node{node}/x86/sgx_total_bytes"
        target.parent.mkdir(parents=True)
        target.write_text(value.format(node=node) + "\n")


def test_diagnostics_are_capped_with_a_count(host_root):
    root = host_root("sgx-2socket")
    add_nodes(root, 198, "garbage{node}")
    report = discover(root)
    assert len(report.diagnostics) == MAX_DIAGNOSTICS
    assert report.diagnostics[-1].startswith("... and ")
    assert "more diagnostics" in report.diagnostics[-1]


def test_oversized_file_is_a_diagnostic(host_root):
    root = host_root("sgx-2socket")
    cpuinfo = root / "proc/cpuinfo"
    cpuinfo.write_text(cpuinfo.read_text() + "x" * (2 << 20))
    report = discover(root)
    assert any("/proc/cpuinfo is larger than" in d for d in report.diagnostics)


@pytest.mark.parametrize("value", ["-5", "99999999999999999999999", "0x10"])
def test_negative_or_absurd_epc_size_is_a_diagnostic(host_root, value):
    root = host_root("sgx-2socket")
    (root / "sys/devices/system/node/node0/x86/sgx_total_bytes").write_text(value + "\n")
    report = discover(root)
    assert all(s.size_bytes >= 0 for s in report.sgx.epc_sections)
    assert 0 not in [s.node for s in report.sgx.epc_sections]
    assert any("sgx_total_bytes" in d and value[:10] in d for d in report.diagnostics)


def test_absurd_misc_capacity_is_a_diagnostic(host_root):
    root = host_root("tdx-host")
    (root / "sys/fs/cgroup/misc.capacity").write_text("sgx_epc 1\ntdx 99999999999999999999\n")
    report = discover(root)
    assert report.tdx.keys_total is None
    assert any("misc.capacity" in d for d in report.diagnostics)


def test_domcaps_and_libvirt_uri_are_mutually_exclusive(tmp_path, capsys):
    domcaps = tmp_path / "domcaps.xml"
    domcaps.write_text("<domainCapabilities/>")
    with pytest.raises(SystemExit) as exited:
        main(["inspect", "--domcaps", str(domcaps), "--libvirt-uri", "test:///default"])
    assert exited.value.code == 64  # EX_USAGE
    error = capsys.readouterr().err
    assert "mutually exclusive" in error and len(error.splitlines()) == 1


def test_more_numa_nodes_than_linux_allows_are_not_all_read(host_root):
    root = host_root("sgx-2socket")
    add_nodes(root, 1098, "0")
    report = discover(root)
    assert len(report.sgx.epc_sections) == 1024
    assert any("more than Linux's 1024" in d for d in report.diagnostics)


def test_a_symlinked_file_is_not_followed(host_root, tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$secret-hash:19000:0:99999:7:::\n")
    root = host_root("sgx-2socket")
    target = root / "sys/devices/system/node/node0/x86/sgx_total_bytes"
    target.unlink()
    target.symlink_to(secret)
    report = discover(root)
    assert not any("secret-hash" in d for d in report.diagnostics)
    assert any("sgx_total_bytes is a symbolic link" in d for d in report.diagnostics)
