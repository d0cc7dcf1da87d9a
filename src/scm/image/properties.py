"""The Glance image properties of a guest image built by scm, and the matching flavor.

Images from ``scm image build`` boot only through UEFI on q35, so every one needs those
properties; a TDX image also asks for nova's in-tree memory encryption with the
``intel-tdx`` model and stateless firmware (a TD has no persistent NVRAM), and has no
use for an emulated display. An SGX image asks for the SGX trait, so nova only places it
where EPC can be given; the EPC itself comes from the flavor.
"""

from __future__ import annotations

from scm.openstack.flavor_spec import FlavorSpec, confidential_flavor
from scm.platform.render import TRAIT_SGX

UEFI_Q35 = {"hw_firmware_type": "uefi", "hw_machine_type": "q35"}
TDX_IMAGE = {
    "hw_mem_encryption": "True",
    "hw_mem_encryption_model": "intel-tdx",
    "hw_firmware_stateless": "True",
    "hw_video_model": "none",
}
DEFAULT_SGX_EPC_MB = 64


def guest_properties(tee: str, sgx_epc_mb: int | None = None) -> FlavorSpec:
    """Image properties for a ``tee`` ("tdx" or "sgx") guest image, with the flavor's specs."""
    if tee == "tdx":
        flavor = confidential_flavor(tdx=True)
        properties = {**flavor.image_properties, **UEFI_Q35, **TDX_IMAGE}
    else:
        flavor = confidential_flavor(epc_mb=sgx_epc_mb or DEFAULT_SGX_EPC_MB)
        properties = {**flavor.image_properties, **UEFI_Q35, f"trait:{TRAIT_SGX}": "required"}
    return FlavorSpec(
        extra_specs=flavor.extra_specs, image_properties=dict(sorted(properties.items()))
    )
