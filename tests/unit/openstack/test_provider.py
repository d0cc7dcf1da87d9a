from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from scm.errors import ConfigError
from scm.openstack.provider import sgx_provider
from scm.platform import HostReport, discover
from tests.hostroots import HOSTS

EPC = "CUSTOM_SGX_EPC_MB"


def report(name: str) -> HostReport:
    return discover(HOSTS / name / "root")


def test_discovered_epc_becomes_the_inventory_with_sgx_traits() -> None:
    provider = sgx_provider(report("sgx-2socket"))
    assert provider.inventory[EPC]["total"] == 4056
    assert provider.inventory[EPC]["max_unit"] == 4056
    assert provider.traits == {"HW_CPU_X86_SGX", "CUSTOM_SGX_FLC", "CUSTOM_SGX2"}


def test_override_and_reservation_shape_total_reserved_and_max_unit() -> None:
    inventory = sgx_provider(report("sgx-2socket"), epc_mb=2000, reserved_epc_mb=48).inventory
    assert (inventory[EPC]["total"], inventory[EPC]["reserved"]) == (2000, 48)
    assert inventory[EPC]["max_unit"] == 1952


@pytest.mark.parametrize(
    ("epc_mb", "reserved", "message"),
    [
        (4057, 0, "exceeds the host's usable EPC of 4056 MiB"),
        (0, 0, "must be a positive number"),
        (None, -1, "must not be negative"),
        (100, 100, "leaves no EPC for guests"),
    ],
)
def test_bad_overrides_are_config_errors(epc_mb: int | None, reserved: int, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        sgx_provider(report("sgx-2socket"), epc_mb=epc_mb, reserved_epc_mb=reserved)


def test_sgx_cpu_without_epc_gets_nothing_and_a_reason() -> None:
    provider = sgx_provider(report("sgx-bios-disabled"))
    assert provider.inventory == {} and provider.traits == frozenset()
    assert "BIOS" in provider.warnings[0]
    with pytest.raises(ConfigError, match="no usable EPC"):
        sgx_provider(report("sgx-bios-disabled"), epc_mb=64)


def test_host_without_vepc_offers_no_epc_to_guests(host_root: Callable[[str], Path]) -> None:
    root = host_root("sgx-2socket")
    (root / "dev" / "sgx_vepc").unlink()
    provider = sgx_provider(discover(root))
    assert provider.inventory == {}
    assert "/dev/sgx_vepc is missing" in provider.warnings[0]


def test_host_without_sgx_has_no_warnings() -> None:
    assert sgx_provider(report("no-tee")).warnings == ()
