from __future__ import annotations

import pytest

from scm.errors import InputError
from scm.openstack.flavor_spec import confidential_flavor, parse_epc_size, render_text


@pytest.mark.parametrize(
    ("text", "mib"), [("64M", 64), ("64MiB", 64), ("1G", 1024), ("128", 128), ("2gib", 2048)]
)
def test_epc_sizes_in_mib(text: str, mib: int) -> None:
    assert parse_epc_size(text) == mib


@pytest.mark.parametrize("text", ["0", "64K", "64B", "lots", "1.5G", "", "2048T"])
def test_bad_epc_sizes_are_input_errors(text: str) -> None:
    with pytest.raises(InputError):
        parse_epc_size(text)


def test_sgx_flavor_requests_epc_and_the_sgx_trait() -> None:
    spec = confidential_flavor(epc_mb=64)
    assert spec.extra_specs == {
        "resources:CUSTOM_SGX_EPC_MB": "64",
        "trait:HW_CPU_X86_SGX": "required",
    }
    assert spec.image_properties == {}


def test_tdx_flavor_uses_novas_in_tree_memory_encryption() -> None:
    spec = confidential_flavor(tdx=True)
    assert spec.extra_specs == {
        "hw:mem_encryption": "true",
        "hw:mem_encryption_model": "intel-tdx",
    }
    assert spec.image_properties["hw_firmware_type"] == "uefi"
    assert spec.image_properties["hw_machine_type"] == "q35"


def test_nothing_asked_is_an_error() -> None:
    with pytest.raises(InputError, match="--sgx-epc"):
        confidential_flavor()


def test_text_is_openstack_cli_commands() -> None:
    text = render_text(confidential_flavor(epc_mb=64, tdx=True), flavor="sgx.small")
    assert "openstack flavor set --property resources:CUSTOM_SGX_EPC_MB=64" in text
    assert text.splitlines()[1].endswith(" sgx.small")
    assert "openstack image set --property hw_firmware_type=uefi" in text
