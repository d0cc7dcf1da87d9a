"""The flavor extra specs and image properties of a confidential flavor.

SGX is this project's: EPC from placement (``CUSTOM_SGX_EPC_MB``) plus the SGX trait. TDX is
nova's in-tree support: memory encryption with the ``intel-tdx`` model, UEFI, q35, stateless
firmware (nova then requests ``MEM_ENCRYPTION_CONTEXT`` from placement itself).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from scm.errors import InputError
from scm.openstack.request import sgx_request
from scm.platform.render import RC_SGX_EPC_MB, TRAIT_SGX

_SIZE = re.compile(r"(?P<number>\d+)\s*(?P<unit>[KMGT]i?B?|B)?", re.IGNORECASE)
# Placement stores inventory and allocation amounts as 32-bit signed integers.
PLACEMENT_MAX = 2**31 - 1
_UNIT_MIB = {"": 1, "M": 1, "G": 1024, "T": 1024 * 1024}


@dataclass(frozen=True)
class FlavorSpec:
    """What to set on a flavor (extra specs) and on its images (properties)."""

    extra_specs: dict[str, str] = field(default_factory=dict)
    image_properties: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, dict[str, str]]:
        """The JSON form every command prints (flavor-spec, image properties)."""
        return {"flavor_extra_specs": self.extra_specs, "image_properties": self.image_properties}


def parse_epc_size(text: str) -> int:
    """'64M', '64MiB', '1G' or a bare number of MiB -> MiB; EPC comes in whole MiB."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise InputError(f"EPC size {text!r} is not a size such as 64M or 1G")
    raw = (match["unit"] or "").upper()
    unit = raw.rstrip("B").rstrip("I")
    if raw != "B" and unit in ("", "M", "G", "T"):
        mib = int(match["number"]) * _UNIT_MIB[unit]
    else:
        raise InputError(f"EPC size {text!r} must be a whole number of MiB (use M or G)")
    if mib < 1:
        raise InputError(f"EPC size {text!r} must be at least 1 MiB")
    if mib > PLACEMENT_MAX:
        raise InputError(
            f"EPC size {text!r} is more than placement can count ({PLACEMENT_MAX} MiB)"
        )
    return mib


def confidential_flavor(epc_mb: int | None = None, tdx: bool = False) -> FlavorSpec:
    """Extra specs and image properties for SGX EPC of ``epc_mb`` MiB and/or a TDX guest."""
    if epc_mb is None and not tdx:
        raise InputError("say what the flavor is for: --sgx-epc SIZE, --tdx, or both")
    extra_specs: dict[str, str] = {}
    image_properties: dict[str, str] = {}
    if epc_mb is not None:
        extra_specs[f"resources:{RC_SGX_EPC_MB}"] = str(epc_mb)
        extra_specs[f"trait:{TRAIT_SGX}"] = "required"
        sgx_request(extra_specs)  # the same rules the compute driver applies
    if tdx:
        extra_specs["hw:mem_encryption"] = "true"
        extra_specs["hw:mem_encryption_model"] = "intel-tdx"
        image_properties.update(
            {
                "hw_firmware_type": "uefi",
                "hw_firmware_stateless": "true",
                "hw_machine_type": "q35",
            }
        )
    return FlavorSpec(extra_specs=extra_specs, image_properties=image_properties)


def render_text(spec: FlavorSpec, flavor: str = "FLAVOR", image: str = "IMAGE") -> str:
    """The openstack CLI commands that set ``spec``."""
    lines = ["# flavor extra specs"]
    props = " ".join(f"--property {k}={v}" for k, v in spec.extra_specs.items())
    lines.append(f"openstack flavor set {props} {flavor}")
    if spec.image_properties:
        lines.append("# image properties")
        props = " ".join(f"--property {k}={v}" for k, v in spec.image_properties.items())
        lines.append(f"openstack image set {props} {image}")
    return "\n".join(lines) + "\n"
