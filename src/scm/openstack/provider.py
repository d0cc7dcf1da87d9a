"""What a compute node's resource provider carries for SGX: EPC inventory and traits.

Placement counts EPC in MiB (``CUSTOM_SGX_EPC_MB``). The host's usable EPC comes from
``scm.platform``; an operator may override the total (``sgx_epc_mb``, e.g. to keep EPC for
host enclaves out of the count) and keep some back from guests (``reserved_sgx_epc_mb``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scm.errors import ConfigError
from scm.platform import HostReport, placement_inventories, placement_traits
from scm.platform.render import RC_SGX_EPC_MB, TRAIT_SGX, TRAIT_SGX2, TRAIT_SGX_FLC, TRAIT_TDX

# Traits this project decides about; nova's own traits are left alone.
SGX_TRAITS = frozenset({TRAIT_SGX, TRAIT_SGX_FLC, TRAIT_SGX2})
# QEMU hands EPC to guests through this device; without it no VM gets EPC.
VEPC_DEVICE = "/dev/sgx_vepc"


@dataclass(frozen=True)
class SgxProvider:
    """The SGX part of a compute node provider: inventory (may be empty) and traits."""

    inventory: dict[str, dict[str, Any]]
    traits: frozenset[str]
    warnings: tuple[str, ...] = ()

    @property
    def epc_total_mb(self) -> int:
        return int(self.inventory.get(RC_SGX_EPC_MB, {}).get("total", 0))


def sgx_provider(
    report: HostReport, epc_mb: int | None = None, reserved_epc_mb: int = 0
) -> SgxProvider:
    """Placement data for SGX guests on this host.

    ``epc_mb`` overrides the discovered total and may not exceed it; ``reserved_epc_mb`` is
    kept back from guests. A host that cannot run enclaves gets no inventory and no SGX traits,
    with a warning that says why when its CPU claims SGX.
    """
    if epc_mb is not None and epc_mb < 1:
        raise ConfigError(f"[scm] sgx_epc_mb must be a positive number of MiB, got {epc_mb}")
    if reserved_epc_mb < 0:
        raise ConfigError(f"[scm] reserved_sgx_epc_mb must not be negative, got {reserved_epc_mb}")
    discovered = placement_inventories(report).get(RC_SGX_EPC_MB)
    traits = frozenset(placement_traits(report)) & SGX_TRAITS
    if discovered is None or VEPC_DEVICE not in report.sgx.devices:
        warnings = _why_no_epc(report)
        if epc_mb is not None:
            raise ConfigError(
                f"[scm] sgx_epc_mb = {epc_mb} but this host has no usable EPC"
                + (f" ({warnings[0]})" if warnings else "")
            )
        return SgxProvider(inventory={}, traits=frozenset(), warnings=warnings)
    host_total = int(discovered["total"])
    total = host_total if epc_mb is None else epc_mb
    if total > host_total:
        raise ConfigError(
            f"[scm] sgx_epc_mb = {epc_mb} exceeds the host's usable EPC of {host_total} MiB"
        )
    if reserved_epc_mb >= total:
        raise ConfigError(
            f"[scm] reserved_sgx_epc_mb = {reserved_epc_mb} leaves no EPC for guests "
            f"(total {total} MiB)"
        )
    inventory = dict(discovered, total=total, max_unit=total - reserved_epc_mb)
    inventory["reserved"] = reserved_epc_mb
    return SgxProvider(inventory={RC_SGX_EPC_MB: inventory}, traits=traits)


def _why_no_epc(report: HostReport) -> tuple[str, ...]:
    if not report.sgx.supported:
        return ()
    if report.sgx.enabled and VEPC_DEVICE not in report.sgx.devices:
        return (
            f"{VEPC_DEVICE} is missing: load kvm_intel with SGX support (Linux 5.13+) "
            "so that QEMU can give guests EPC",
        )
    notes = tuple(note for note in report.diagnostics if "SGX" in note or "EPC" in note)
    return notes or ("the CPU supports SGX but the host reports no usable EPC",)


def tdx_trait(report: HostReport) -> frozenset[str]:
    """``HW_CPU_X86_INTEL_TDX`` when the host can run trust domains (nova reports it too)."""
    return frozenset({TRAIT_TDX}) if report.tdx.host_enabled else frozenset()
