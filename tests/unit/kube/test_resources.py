"""Which resources each fixture host offers to the kubelet."""

from __future__ import annotations

import pytest

from scm.kube.resources import SGX_ENCLAVE, SGX_PROVISION, TDX_KEYS, resources_for
from scm.platform import discover
from tests.hostroots import HOSTS


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("sgx-2socket", {SGX_ENCLAVE: 3, SGX_PROVISION: 3}),
        ("tdx-host", {SGX_ENCLAVE: 3, SGX_PROVISION: 3, TDX_KEYS: 63}),
        ("sgx-bios-disabled", {}),
        ("tdx-guest", {}),
        ("no-tee", {}),
    ],
)
def test_resources_follow_the_host_report(host: str, expected: dict[str, int]) -> None:
    found = resources_for(discover(HOSTS / host / "root"), sgx_shares=3)
    assert {name: len(r.device_ids) for name, r in found.items()} == expected


def test_sgx_resources_hand_out_their_device_node_and_unique_socket() -> None:
    found = resources_for(discover(HOSTS / "tdx-host" / "root"), sgx_shares=2)
    assert found[SGX_ENCLAVE].device_nodes == ("/dev/sgx_enclave",)
    assert found[SGX_PROVISION].device_nodes == ("/dev/sgx_provision",)
    assert found[TDX_KEYS].device_nodes == ()
    sockets = {r.socket_name for r in found.values()}
    assert sockets == {"scm-sgx-enclave.sock", "scm-sgx-provision.sock", "scm-tdx-keys.sock"}


def test_zero_shares_offers_no_sgx_devices() -> None:
    assert set(resources_for(discover(HOSTS / "sgx-2socket" / "root"), sgx_shares=0)) == set()
