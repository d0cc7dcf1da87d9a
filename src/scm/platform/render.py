"""Renderers of a HostReport: text for people, JSON, NFD features, placement traits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from scm.platform.report import MIB, HostReport

NFD_PREFIX = "intel.feature.node.kubernetes.io"
TRAIT_SGX = "HW_CPU_X86_SGX"
TRAIT_SGX_FLC = "CUSTOM_SGX_FLC"
TRAIT_SGX2 = "CUSTOM_SGX2"
TRAIT_TDX = "HW_CPU_X86_INTEL_TDX"
RC_SGX_EPC_MB = "CUSTOM_SGX_EPC_MB"


def render_json(report: HostReport) -> str:
    import json  # deferred: the text format, the default, needs no JSON

    return json.dumps(report.to_dict(), indent=2) + "\n"


def render_nfd(report: HostReport) -> str:
    """A Node Feature Discovery ``features.d`` file: labels, then ``# +no-label`` features."""
    lines = ["# Written by scm inspect; NFD's local source reads it from features.d."]
    if report.sgx.enabled:
        lines.append(f"{NFD_PREFIX}/sgx=true")
    if report.tdx.host_enabled:
        lines.append(f"{NFD_PREFIX}/tdx=true")
    if report.tdx.guest:
        lines.append(f"{NFD_PREFIX}/tdx-guest=true")
    hidden = []
    if report.sgx.epc_total_bytes is not None:
        hidden.append(f"sgx_epc_bytes={report.sgx.epc_total_bytes}")
    if report.tdx.keys_total is not None:
        hidden.append(f"tdx_keys={report.tdx.keys_total}")
    if hidden:
        lines.append("# +no-label")
        lines.extend(hidden)
    return "\n".join(lines) + "\n"


def placement_traits(report: HostReport) -> list[str]:
    """The placement traits this host should carry, sorted."""
    traits = []
    if report.sgx.enabled:
        traits.append(TRAIT_SGX)
        if report.sgx.flc:
            traits.append(TRAIT_SGX_FLC)
        if report.sgx.sgx2:
            traits.append(TRAIT_SGX2)
    if report.tdx.host_enabled:
        traits.append(TRAIT_TDX)
    return sorted(traits)


def placement_inventories(report: HostReport) -> dict[str, dict[str, Any]]:
    """The placement inventories this host should report (EPC in MiB, rounded down)."""
    total = report.sgx.epc_total_mib if report.sgx.enabled else 0
    if total <= 0:
        return {}
    return {
        RC_SGX_EPC_MB: {
            "total": total,
            "reserved": 0,
            "min_unit": 1,
            "max_unit": total,
            "step_size": 1,
            "allocation_ratio": 1.0,
        }
    }


def render_placement(report: HostReport) -> str:
    document = {"traits": placement_traits(report), "inventories": placement_inventories(report)}
    import json

    return json.dumps(document, indent=2) + "\n"


def render_text(report: HostReport) -> str:
    """A summary a person can act on: what is there, what is missing, what to fix."""
    sgx, tdx, cpu = report.sgx, report.tdx, report.cpu
    lines = [f"Host {report.root}: {_verdict(report)}", ""]
    lines.append(f"CPU      {cpu.model_name or 'unknown'} ({cpu.vendor or 'unknown vendor'})")
    lines.append(
        f"SGX      {_state(sgx.supported, 'supported by the CPU', 'not supported by the CPU')}"
        f", {'enabled' if sgx.enabled else 'not usable'}"
    )
    lines.append(
        f"         FLC {_yn(sgx.flc)}  SGX1 {_yn(sgx.sgx1)}  SGX2 {_yn(sgx.sgx2)}"
        f"  KVM {_yn(sgx.kvm)}"
    )
    if sgx.epc_total_bytes is not None:
        lines.append(
            f"         EPC {_size(sgx.epc_total_bytes)} in {len(sgx.epc_sections)} section(s)"
        )
    for section in sgx.epc_sections:
        where = f"node {section.node}" if section.node is not None else "node ?"
        base = f" at {section.base:#x}" if section.base is not None else ""
        lines.append(f"           {where}: {_size(section.size_bytes)}{base}")
    lines.append(f"         devices: {', '.join(sgx.devices) or 'none'}")
    keys = "unknown" if tdx.keys_total is None else str(tdx.keys_total)
    lines.append(
        f"TDX      host {_state(tdx.host_enabled, 'enabled', 'not enabled')}, key IDs {keys}"
    )
    lines.append(
        f"         guest: {'yes, this is a trust domain' if tdx.guest else 'no'}"
        + (f" (quotes via {tdx.quote_interface})" if tdx.quote_interface else "")
    )
    if report.libvirt is not None:
        lines.append(
            f"libvirt  SGX for guests {_yn(report.libvirt.sgx_supported)}, "
            f"TDX for guests {_yn(report.libvirt.tdx_supported)}"
        )
    if report.diagnostics:
        lines += ["", "To look at:"]
        lines += [f"  - {note}" for note in report.diagnostics]
    return "\n".join(lines) + "\n"


def _verdict(report: HostReport) -> str:
    can = []
    if report.sgx.enabled:
        can.append("SGX enclaves")
    if report.tdx.host_enabled:
        can.append("TDX trust domains")
    if can:
        return "can run " + " and ".join(can)
    if report.tdx.guest:
        return "is a TDX trust domain"
    if report.sgx.supported:
        return "has an SGX-capable CPU but SGX is not usable (see below)"
    return "no usable TEE (no SGX enclaves, not a TDX host or guest)"


def _state(value: bool | None, yes: str, no: str) -> str:
    return "unknown" if value is None else (yes if value else no)


def _yn(value: bool | None) -> str:
    return "?" if value is None else ("yes" if value else "no")


def _size(num_bytes: int) -> str:
    if num_bytes >= MIB:
        return f"{num_bytes / MIB:g} MiB"
    return f"{num_bytes} bytes"


RENDERERS: dict[str, Callable[[HostReport], str]] = {
    "text": render_text,
    "json": render_json,
    "nfd": render_nfd,
    "placement": render_placement,
}
