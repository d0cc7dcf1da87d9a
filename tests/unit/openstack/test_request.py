from __future__ import annotations

import pytest

from scm.openstack.request import SgxRequest, SgxRequestError, sgx_request

EPC = "resources:CUSTOM_SGX_EPC_MB"
TRAIT = "trait:HW_CPU_X86_SGX"


def test_flavor_with_epc_and_trait_requests_that_epc() -> None:
    assert sgx_request({EPC: "64", TRAIT: "required"}) == SgxRequest(epc_mb=64)


def test_epc_in_request_groups_adds_up() -> None:
    specs = {EPC: "32", "resources1:CUSTOM_SGX_EPC_MB": "16", TRAIT: "required"}
    assert sgx_request(specs) == SgxRequest(epc_mb=48)


def test_image_trait_stands_in_for_the_flavor_trait() -> None:
    assert sgx_request({EPC: "8"}, ["HW_CPU_X86_SGX"]) == SgxRequest(epc_mb=8)


def test_flavor_without_sgx_is_not_an_sgx_request() -> None:
    assert sgx_request({"hw:cpu_policy": "dedicated"}) is None
    assert sgx_request({TRAIT: "forbidden"}) is None


@pytest.mark.parametrize(
    ("specs", "image_traits", "message"),
    [
        ({EPC: "0", TRAIT: "required"}, [], "must be a positive integer"),
        ({EPC: "64M", TRAIT: "required"}, [], "must be a positive integer"),
        ({EPC: "64"}, [], "not the trait HW_CPU_X86_SGX"),
        ({TRAIT: "forbidden"}, ["HW_CPU_X86_SGX"], "forbids trait HW_CPU_X86_SGX"),
        ({TRAIT: "required"}, [], "requests no EPC"),
    ],
)
def test_unworkable_requests_say_what_to_change(
    specs: dict[str, str], image_traits: list[str], message: str
) -> None:
    with pytest.raises(SgxRequestError, match=message):
        sgx_request(specs, image_traits)
