"""Bare metal: the collector through ironic-python-agent's loader, the hook through ironic's."""

from __future__ import annotations

from pathlib import Path

import pytest
from ironic.conductor import task_manager
from ironic.drivers.modules import inspect_utils
from ironic.objects import node as node_obj
from ironic.tests.unit.db import base as db_base
from ironic.tests.unit.db import utils as db_utils
from ironic.tests.unit.objects import utils as obj_utils
from ironic_python_agent import inspector
from ironic_python_agent import utils as ipa_utils

from scm.openstack.ironic import REPORT_KEY
from scm.platform import discover
from tests.hostroots import HOSTS


def run_collector(root: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, object], str]:
    monkeypatch.setenv("SCM_OPENSTACK_HOST_ROOT", str(root))
    data: dict[str, object] = {}
    failures = ipa_utils.AccumulatedFailures()
    for extension in inspector.extension_manager(["scm-tee"]):
        extension.plugin(data, failures)
    return data, failures.get_error() or ""


def test_collector_puts_the_host_report_into_the_inspection_data(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data, error = run_collector(HOSTS / "tdx-host" / "root", monkeypatch)
    assert error == ""
    report = data[REPORT_KEY]
    assert isinstance(report, dict)
    assert report["schema"] == "scm.platform/v1"
    assert report["tdx"]["host_enabled"] is True
    assert report["sgx"]["epc_total_bytes"] == 8522825728


def test_collector_reports_an_unreadable_host_as_an_inspection_failure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data, error = run_collector(tmp_path / "missing", monkeypatch)
    assert REPORT_KEY not in data
    assert "scm: SGX/TDX discovery failed" in error


class TestTeeHook(db_base.DbTestCase):
    """ironic's own DB, node objects, task manager and hook loading (stevedore)."""

    def setUp(self) -> None:
        super().setUp()
        self.node = obj_utils.create_test_node(self.context, properties={"cpus": 64})
        db_utils.create_test_node_traits(["CUSTOM_GPU", "CUSTOM_SGX2"], node_id=self.node.id)
        hooks = inspect_utils.validate_inspection_hooks("scm-test", ["scm-tee"])
        self.hook = hooks[0].obj

    def inspect(self, host: str | None) -> node_obj.Node:
        plugin_data = {REPORT_KEY: discover(HOSTS / host / "root").to_dict()} if host else {}
        with task_manager.acquire(self.context, self.node.id) as task:
            self.hook(task, {"cpu": {"count": 64}}, plugin_data)
        return node_obj.Node.get_by_id(self.context, self.node.id)

    def test_tdx_host_gets_tee_traits_and_epc_property(self) -> None:
        node = self.inspect("tdx-host")
        traits = set(node.traits.get_trait_names())
        # CUSTOM_SGX2 was stale (this host does not report SGX2); CUSTOM_GPU is not ours.
        self.assertEqual(
            {"CUSTOM_GPU", "HW_CPU_X86_SGX", "CUSTOM_SGX_FLC", "HW_CPU_X86_INTEL_TDX"}, traits
        )
        self.assertEqual(8128, node.properties["sgx_epc_mb"])
        self.assertEqual(64, node.properties["cpus"])

    def test_host_without_tee_loses_tee_traits(self) -> None:
        node = self.inspect("no-tee")
        self.assertEqual({"CUSTOM_GPU"}, set(node.traits.get_trait_names()))
        self.assertEqual(0, node.properties["sgx_epc_mb"])

    def test_missing_report_leaves_the_node_as_it_was(self) -> None:
        node = self.inspect(None)
        self.assertEqual({"CUSTOM_GPU", "CUSTOM_SGX2"}, set(node.traits.get_trait_names()))
        self.assertNotIn("sgx_epc_mb", node.properties)

    def inspect_with(self, report: object) -> node_obj.Node:
        with task_manager.acquire(self.context, self.node.id) as task:
            self.hook(task, {"cpu": {"count": 64}}, {REPORT_KEY: report})
        return node_obj.Node.get_by_id(self.context, self.node.id)

    def test_hostile_inspection_data_is_refused_and_logged(self) -> None:
        good = discover(HOSTS / "tdx-host" / "root").to_dict()
        hostile = [
            "not a dict",
            {**good, "sgx": "on"},
            {**good, "sgx": {**good["sgx"], "epc_total_bytes": -1}},
            {**good, "sgx": {**good["sgx"], "epc_total_bytes": "8G"}},
        ]
        for report in hostile:
            with self.assertLogs("scm.openstack.ironic.hook", level="WARNING") as logs:
                node = self.inspect_with(report)
            self.assertIn("traits left unchanged", logs.output[0])
            self.assertEqual({"CUSTOM_GPU", "CUSTOM_SGX2"}, set(node.traits.get_trait_names()))
            self.assertNotIn("sgx_epc_mb", node.properties)
