"""The SGX request of a server: EPC from the flavor, the SGX trait from flavor or image.

Nova merges flavor extra specs and image properties into one placement query; this module
reads the same inputs and decides whether the guest gets an EPC device and how much.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from scm.errors import InputError
from scm.platform.render import RC_SGX_EPC_MB, TRAIT_SGX

# resources:CUSTOM_SGX_EPC_MB, or a request group's resources1:CUSTOM_SGX_EPC_MB
_EPC_KEY = re.compile(rf"resources([a-zA-Z0-9_-]{{1,64}})?:{RC_SGX_EPC_MB}")
_TRAIT_KEY = re.compile(rf"trait([a-zA-Z0-9_-]{{1,64}})?:{TRAIT_SGX}")


class SgxRequestError(InputError):
    """Flavor extra specs and image properties ask for SGX in a way that cannot work."""


@dataclass(frozen=True)
class SgxRequest:
    """EPC the guest is given, in MiB."""

    epc_mb: int


def sgx_request(
    extra_specs: Mapping[str, str], image_traits_required: Iterable[str] = ()
) -> SgxRequest | None:
    """The SGX request of a flavor and image, or None when neither asks for SGX.

    Raises SgxRequestError for EPC that is not a positive integer, EPC without the
    ``HW_CPU_X86_SGX`` trait, the trait forbidden by the flavor but required by the image,
    and the trait required without any EPC (an SGX guest with no EPC cannot run enclaves).
    """
    epc_mb = 0
    for key, value in extra_specs.items():
        if _EPC_KEY.fullmatch(key):
            epc_mb += _positive_mib(key, value)
    flavor_trait = {
        str(value).strip().lower()
        for key, value in extra_specs.items()
        if _TRAIT_KEY.fullmatch(key)
    }
    image_requires = TRAIT_SGX in set(image_traits_required)
    if "forbidden" in flavor_trait and image_requires:
        raise SgxRequestError(
            f"the flavor forbids trait {TRAIT_SGX} but the image requires it "
            f"(image property trait:{TRAIT_SGX}=required): use an SGX flavor or another image"
        )
    trait_required = "required" in flavor_trait or image_requires
    if epc_mb and not trait_required:
        raise SgxRequestError(
            f"the flavor requests {RC_SGX_EPC_MB} but not the trait {TRAIT_SGX}: add the extra "
            f"spec trait:{TRAIT_SGX}=required (or the image property of the same name)"
        )
    if trait_required and not epc_mb:
        raise SgxRequestError(
            f"trait {TRAIT_SGX} is required but the flavor requests no EPC: add the extra "
            f"spec resources:{RC_SGX_EPC_MB}=<MiB>"
        )
    return SgxRequest(epc_mb=epc_mb) if epc_mb else None


def _positive_mib(key: str, value: object) -> int:
    text = str(value).strip()
    if not text.isdigit() or int(text) < 1:
        raise SgxRequestError(f"extra spec {key}={value!r} must be a positive integer (MiB)")
    return int(text)
