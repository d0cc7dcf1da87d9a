"""Discovery on every fixture host root: the facts and diagnostics an operator relies on."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from scm.errors import DiscoveryError
from scm.platform import discover

FIXTURES = Path(__file__).parents[2] / "fixtures"
EPC_PER_SOCKET = 0x7EC00000


def test_two_socket_sgx_host(host_root):
    report = discover(host_root("sgx-2socket"))
    sgx = report.sgx
    assert (sgx.supported, sgx.enabled, sgx.flc, sgx.sgx1, sgx.sgx2) == (True,) * 5
    assert sgx.kvm is True
    assert sgx.epc_total_bytes == 2 * EPC_PER_SOCKET
    assert [(s.node, s.size_bytes, s.base) for s in sgx.epc_sections] == [
        (0, EPC_PER_SOCKET, 0x8000C00000),
        (1, EPC_PER_SOCKET, 0x10000C00000),
    ]
    assert sgx.devices == ("/dev/sgx_enclave", "/dev/sgx_provision", "/dev/sgx_vepc")
    assert sgx.max_enclave_size_64 == 1 << 0x38
    assert report.tdx.host_enabled is False
    assert report.tdx.guest is False
    assert report.cpu.model_name == "Intel(R) Xeon(R) Platinum 8380 CPU @ 2.30GHz"
    assert report.diagnostics == ()


def test_sgx_disabled_in_bios_is_explained(host_root):
    report = discover(host_root("sgx-bios-disabled"))
    assert report.sgx.supported is True
    assert report.sgx.enabled is False
    assert report.sgx.epc_total_bytes == 0
    assert report.sgx.devices == ()
    assert any("no EPC: enable it in the BIOS" in d for d in report.diagnostics)


def test_tdx_host(host_root):
    report = discover(host_root("tdx-host"))
    assert report.tdx.host_enabled is True
    assert report.tdx.keys_total == 63
    assert report.tdx.guest is False
    assert report.sgx.enabled is True
    # Without the cpuid device, what only CPUID knows stays unknown rather than "no".
    assert report.sgx.sgx1 is None and report.sgx.sgx2 is None
    assert report.sgx.flc is True  # from the sgx_lc flag
    assert report.sgx.epc_sections[0].base is None
    assert report.diagnostics == ()


def test_tdx_guest_with_configfs_tsm(host_root):
    report = discover(host_root("tdx-guest"))
    assert report.tdx.guest is True
    assert report.tdx.quote_interface == "configfs-tsm"
    assert report.tdx.host_enabled is False
    assert report.sgx.supported is False


def test_tdx_guest_recognised_from_cpuid_alone(host_root):
    root = host_root("tdx-guest")
    cpuinfo = root / "proc" / "cpuinfo"
    cpuinfo.write_text(cpuinfo.read_text().replace(" tdx_guest", ""))
    (root / "dev" / "tdx_guest").unlink()
    report = discover(root)
    assert report.tdx.guest is True  # CPUID leaf 0x21 says "IntelTDX    "


def test_tdx_guest_without_quote_interface_says_how_to_fix(host_root):
    root = host_root("tdx-guest")
    shutil.rmtree(root / "sys" / "kernel" / "config")
    (root / "dev" / "tdx_guest").unlink()
    report = discover(root)
    assert report.tdx.guest is True
    assert report.tdx.quote_interface is None
    assert any("mount configfs" in d for d in report.diagnostics)


def test_machine_without_tee(host_root):
    report = discover(host_root("no-tee"))
    assert report.sgx.supported is False
    assert report.sgx.enabled is False
    assert report.tdx.host_enabled is False
    assert report.tdx.guest is False
    assert report.has_tee is False


def test_epc_without_device_node_is_diagnosed(host_root):
    root = host_root("sgx-2socket")
    (root / "dev" / "sgx_enclave").unlink()
    report = discover(root)
    assert report.sgx.enabled is False
    assert report.sgx.epc_total_bytes == 2 * EPC_PER_SOCKET
    assert any("/dev/sgx_enclave is missing" in d for d in report.diagnostics)


def test_sgx_without_flc_is_diagnosed(host_root):
    root = host_root("tdx-host")
    cpuinfo = root / "proc" / "cpuinfo"
    cpuinfo.write_text(cpuinfo.read_text().replace(" sgx_lc", ""))
    report = discover(root)
    assert report.sgx.flc is False
    assert any("flexible launch control" in d for d in report.diagnostics)


def test_tdx_enabled_without_keys_is_diagnosed(host_root):
    root = host_root("tdx-host")
    (root / "sys" / "fs" / "cgroup" / "misc.capacity").write_text("tdx 0\n")
    report = discover(root)
    assert report.tdx.keys_total == 0
    assert any("no TDX private key IDs" in d for d in report.diagnostics)


def test_garbage_in_sysfs_becomes_a_diagnostic(host_root):
    root = host_root("sgx-2socket")
    (root / "sys/devices/system/node/node1/x86/sgx_total_bytes").write_text("lots\n")
    (root / "sys/module/kvm_intel/parameters/sgx").write_text("maybe\n")
    report = discover(root)
    assert report.sgx.epc_total_bytes == EPC_PER_SOCKET
    assert report.sgx.kvm is None
    assert any("does not hold an integer" in d for d in report.diagnostics)
    assert any("expected Y or N" in d for d in report.diagnostics)
    assert any("2 EPC sections but sysfs shows EPC on 1" in d for d in report.diagnostics)


def test_truncated_cpuid_is_unknown_not_a_crash(host_root):
    root = host_root("sgx-bios-disabled")
    device = root / "dev" / "cpu" / "0" / "cpuid"
    text = device.read_text()
    device.write_text(text[: text.index("0x00000007 0x00:") + 30])  # leaf 7 cut mid-line
    report = discover(root)
    assert report.sgx.supported is None
    assert any("line 3 is not a cpuid -r record" in d for d in report.diagnostics)


def test_unreadable_file_is_a_diagnostic(host_root):
    root = host_root("tdx-host")
    target = root / "sys/module/kvm_intel/parameters/tdx"
    target.unlink()
    target.mkdir()  # reading a directory fails like an unreadable file would
    report = discover(root)
    assert report.tdx.host_enabled is False
    assert any("is a directory" in d for d in report.diagnostics)


def test_domcaps_fill_in_and_contradict(host_root):
    xml = (FIXTURES / "domcaps" / "sgx-2socket.xml").read_text()
    report = discover(host_root("tdx-host"), domcaps_xml=xml)
    assert report.libvirt is not None and report.libvirt.sgx_supported is True
    assert report.sgx.sgx2 is True  # CPUID unknown here, libvirt says yes
    contradicting = (FIXTURES / "domcaps" / "no-sgx-tdx.xml").read_text()
    report = discover(host_root("sgx-2socket"), domcaps_xml=contradicting)
    assert any("libvirt does not offer SGX" in d for d in report.diagnostics)


def test_malformed_domcaps_is_a_diagnostic(host_root):
    xml = (FIXTURES / "domcaps" / "truncated.xml").read_text()
    report = discover(host_root("sgx-2socket"), domcaps_xml=xml)
    assert report.libvirt is None
    assert any("not valid XML" in d for d in report.diagnostics)


def test_missing_root_is_an_error(tmp_path):
    with pytest.raises(DiscoveryError, match="does not exist"):
        discover(tmp_path / "absent")


def test_empty_root_is_an_error(tmp_path):
    with pytest.raises(DiscoveryError, match="nothing could be read"):
        discover(tmp_path)


def test_this_machine():
    report = discover("/")
    assert report.cpu.vendor is not None
    # This machine has no TEE; a report that claims one would mislead an operator.
    assert report.has_tee is False
