"""The ironic hook's view of a node's inspection data: trusted only once it fits the schema."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from scm.errors import InputError
from scm.openstack.ironic.facts import node_facts
from scm.platform import discover
from tests.hostroots import HOSTS


@pytest.fixture(scope="module")
def good() -> dict[str, Any]:
    return discover(HOSTS / "tdx-host" / "root").to_dict()


def test_a_real_report_gives_traits_and_epc(good):
    facts = node_facts(good)
    assert "HW_CPU_X86_INTEL_TDX" in facts.traits
    assert facts.sgx_epc_mb == 8128


@pytest.mark.parametrize(
    ("field", "value", "where"),
    [
        ("epc_total_bytes", "lots", "sgx/epc_total_bytes"),
        ("epc_total_bytes", -4096, "sgx/epc_total_bytes"),
        ("epc_total_bytes", 1 << 80, "sgx/epc_total_bytes"),
        ("epc_total_bytes", 1.5, "sgx/epc_total_bytes"),
        ("epc_total_bytes", [1], "sgx/epc_total_bytes"),
        ("enabled", "yes", "sgx/enabled"),
    ],
)
def test_bad_sgx_field_is_refused_by_name(good, field, value, where):
    report = copy.deepcopy(good)
    report["sgx"][field] = value
    with pytest.raises(InputError, match=where) as caught:
        node_facts(report)
    assert str(value) not in str(caught.value)  # the peer's value is never echoed


@pytest.mark.parametrize(
    "report",
    [None, "scm.platform/v1", 42, [], {"schema": "other/v9"}, {"schema": ["scm.platform/v1"]}],
)
def test_not_a_report_is_refused(report):
    with pytest.raises(InputError, match=r"no scm\.platform/v1 host report"):
        node_facts(report)


@pytest.mark.parametrize("section", ["sgx", "tdx"])
@pytest.mark.parametrize("value", ["on", 7, ["enabled"]])
def test_a_section_that_is_not_an_object_is_refused(good, section, value):
    report = {**good, section: value}
    with pytest.raises(InputError, match=f"{section} fails"):
        node_facts(report)


def test_tdx_host_enabled_must_be_a_flag(good):
    report = copy.deepcopy(good)
    report["tdx"]["host_enabled"] = {"$gt": 0}
    with pytest.raises(InputError, match="tdx/host_enabled"):
        node_facts(report)
