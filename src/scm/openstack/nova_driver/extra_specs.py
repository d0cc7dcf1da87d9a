"""Flavor extra spec validation for EPC, loaded by nova's API (``nova.api.extra_spec_validators``).

nova checks ``resources:CUSTOM_*`` only for being an integer; EPC must also be positive, so
``openstack flavor set --property resources:CUSTOM_SGX_EPC_MB=0`` fails with HTTP 400.
"""

from __future__ import annotations

from nova.api.validation.extra_specs import base

from scm.platform.render import RC_SGX_EPC_MB

EXTRA_SPEC_VALIDATORS = [
    base.ExtraSpecValidator(
        name=f"resources:{RC_SGX_EPC_MB}",
        description="SGX EPC in MiB given to the guest (needs trait:HW_CPU_X86_SGX=required).",
        value={"type": int, "min": 1},
    ),
]


def register() -> list[base.ExtraSpecValidator]:
    return EXTRA_SPEC_VALIDATORS
