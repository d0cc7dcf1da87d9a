from __future__ import annotations

import pytest

from scm.openstack.guest import epc_per_node, guest_cpu_features
from scm.platform import SgxReport


def test_epc_split_over_nodes_keeps_the_total() -> None:
    assert epc_per_node(96, [0, 1]) == [(0, 48), (1, 48)]
    assert epc_per_node(97, [0, 1, 2]) == [(0, 33), (1, 32), (2, 32)]
    assert epc_per_node(1, [0, 1]) == [(0, 1)]


def test_epc_split_refuses_nothing() -> None:
    with pytest.raises(ValueError):
        epc_per_node(0, [0])


def test_guest_features_follow_the_host() -> None:
    full = guest_cpu_features(SgxReport(supported=True, enabled=True, flc=True, sgx2=True))
    assert set(full) == {"sgx", "sgx-provisionkey", "sgx1", "sgxlc", "sgx2"}
    basic = guest_cpu_features(SgxReport(supported=True, enabled=True, flc=False, sgx2=False))
    assert set(basic) == {"sgx", "sgx-provisionkey", "sgx1"}
