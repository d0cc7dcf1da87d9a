"""HostReport: the one model of what a host can do for SGX and TDX.

Kubernetes and OpenStack parts consume this model; none of them reads sysfs itself.
``None`` always means "unknown" (the host did not say), never "no".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scm.record import Record

if TYPE_CHECKING:  # only `--domcaps`/`--libvirt-uri` load the XML side (start-up time)
    from scm.platform.domcaps import DomainCaps

SCHEMA = "scm.platform/v1"
MIB = 1024 * 1024


class EpcSection(Record):
    """One EPC section: its size, the NUMA node it belongs to and its physical base."""

    size_bytes: int
    node: int | None = None
    base: int | None = None


class CpuSummary(Record):
    """The CPU's identity as /proc/cpuinfo reports it."""

    vendor: str | None = None
    model_name: str | None = None
    family: int | None = None
    model: int | None = None
    stepping: int | None = None


class SgxReport(Record):
    """SGX on this host. ``enabled`` means enclaves can run: EPC > 0 and /dev/sgx_enclave."""

    supported: bool | None = None
    enabled: bool = False
    flc: bool | None = None
    sgx1: bool | None = None
    sgx2: bool | None = None
    epc_total_bytes: int | None = None
    epc_sections: tuple[EpcSection, ...] = ()
    devices: tuple[str, ...] = ()
    kvm: bool | None = None
    max_enclave_size_64: int | None = None

    @property
    def epc_total_mib(self) -> int:
        """Usable EPC in whole MiB (rounded down), 0 when unknown."""
        return (self.epc_total_bytes or 0) // MIB


class TdxReport(Record):
    """TDX on this host: as a KVM host for trust domains, or as a trust domain itself."""

    host_enabled: bool | None = None
    keys_total: int | None = None
    guest: bool = False
    quote_interface: str | None = None


class HostReport(Record):
    """Everything discovery found about one host, and what to fix (``diagnostics``)."""

    root: str
    cpu: CpuSummary
    sgx: SgxReport
    tdx: TdxReport
    libvirt: DomainCaps | None = None
    diagnostics: tuple[str, ...] = ()
    schema: str = SCHEMA

    @property
    def has_tee(self) -> bool:
        """True when the host can run SGX enclaves or TDs, or is itself a TD."""
        return self.sgx.enabled or bool(self.tdx.host_enabled) or self.tdx.guest

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (schema ``scm.platform/v1``): plain types, keys in a stable order."""
        sgx = self.sgx.as_dict()
        sgx["epc_sections"] = [
            {k: v for k, v in section.as_dict().items() if v is not None or k == "node"}
            for section in self.sgx.epc_sections
        ]
        sgx["devices"] = list(self.sgx.devices)
        libvirt = None
        if self.libvirt is not None:
            import dataclasses  # loaded already with DomainCaps, the one dataclass in a report

            libvirt = dataclasses.asdict(self.libvirt)
        data: dict[str, Any] = {
            "schema": self.schema,
            "root": self.root,
            "cpu": self.cpu.as_dict(),
            "sgx": sgx,
            "tdx": self.tdx.as_dict(),
            "libvirt": libvirt,
            "diagnostics": list(self.diagnostics),
        }
        return data
