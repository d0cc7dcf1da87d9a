"""Every output format of the host report, as its consumers read it."""

from __future__ import annotations

import json

from scm.platform import SCHEMA, discover
from scm.platform.render import render_json, render_nfd, render_placement, render_text


def test_json_schema_fields(host_root):
    data = json.loads(render_json(discover(host_root("sgx-2socket"))))
    assert data["schema"] == SCHEMA == "scm.platform/v1"
    assert data["sgx"]["epc_sections"] == [
        {"node": 0, "size_bytes": 0x7EC00000, "base": 0x8000C00000},
        {"node": 1, "size_bytes": 0x7EC00000, "base": 0x10000C00000},
    ]
    assert set(data["tdx"]) >= {"host_enabled", "keys_total", "guest", "quote_interface"}
    assert data["tdx"]["keys_total"] is None
    assert data["diagnostics"] == []


def test_json_keeps_node_but_drops_unknown_base(host_root):
    data = json.loads(render_json(discover(host_root("tdx-host"))))
    assert data["sgx"]["epc_sections"] == [{"node": 0, "size_bytes": 8522825728}]
    assert data["sgx"]["sgx2"] is None


def test_nfd_labels_and_hidden_features(host_root):
    text = render_nfd(discover(host_root("tdx-host")))
    lines = [line for line in text.splitlines() if not line.startswith("# Written")]
    assert lines == [
        "intel.feature.node.kubernetes.io/sgx=true",
        "intel.feature.node.kubernetes.io/tdx=true",
        "# +no-label",
        "sgx_epc_bytes=8522825728",
        "tdx_keys=63",
    ]


def test_nfd_for_guest_and_for_nothing(host_root):
    guest = render_nfd(discover(host_root("tdx-guest")))
    assert "intel.feature.node.kubernetes.io/tdx-guest=true" in guest.splitlines()
    assert "intel.feature.node.kubernetes.io/sgx=true" not in guest
    bare = render_nfd(discover(host_root("no-tee")))
    assert "=true" not in bare
    assert "sgx_epc_bytes=0" in bare.splitlines()


def test_placement_for_sgx_host(host_root):
    data = json.loads(render_placement(discover(host_root("sgx-2socket"))))
    assert data["traits"] == ["CUSTOM_SGX2", "CUSTOM_SGX_FLC", "HW_CPU_X86_SGX"]
    inventory = data["inventories"]["CUSTOM_SGX_EPC_MB"]
    assert inventory["total"] == 2 * 0x7EC00000 // (1024 * 1024) == 4056
    assert inventory["max_unit"] == 4056


def test_placement_for_tdx_host_and_disabled_sgx(host_root):
    tdx = json.loads(render_placement(discover(host_root("tdx-host"))))
    assert "HW_CPU_X86_INTEL_TDX" in tdx["traits"]
    assert "CUSTOM_SGX2" not in tdx["traits"]  # unknown without CPUID: not claimed
    disabled = json.loads(render_placement(discover(host_root("sgx-bios-disabled"))))
    assert disabled == {"traits": [], "inventories": {}}


def test_text_says_what_to_fix(host_root):
    text = render_text(discover(host_root("sgx-bios-disabled")))
    assert "SGX is not usable" in text.splitlines()[0]
    assert "enable it in the BIOS" in text
    assert "can run SGX enclaves and TDX trust domains" in render_text(
        discover(host_root("tdx-host"))
    )
    assert "no usable TEE" in render_text(discover(host_root("no-tee")))
