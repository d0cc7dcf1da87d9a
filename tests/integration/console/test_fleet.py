"""The fleet page against a real placement service and the API-server emulator."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from scm.console.fleet import KubernetesFleet, PlacementFleet
from scm.errors import UnavailableError
from tests.integration.console.conftest import SCM, console_url, first_line_match
from tests.integration.kube.apiserver import TOKEN, ApiServerEmulator, client_for

PLACEMENT_VERSION = "placement 1.39"
EPC = "CUSTOM_SGX_EPC_MB"


class Placement:
    """HTTP calls to placement as an admin (noauth2 takes the token ``admin``)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def call(self, method: str, path: str, body: Any = None) -> Any:
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"X-Auth-Token": "admin", "OpenStack-API-Version": PLACEMENT_VERSION,
                     "Content-Type": "application/json", "Accept": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
        return json.loads(text) if text else None

    def provider(self, name: str, epc: tuple[int, int] | None) -> str:
        created = self.call("POST", "/resource_providers", {"name": name})
        if epc is not None:
            total, reserved = epc
            self.call("PUT", f"/resource_providers/{created['uuid']}/inventories", {
                "resource_provider_generation": created["generation"],
                "inventories": {EPC: {"total": total, "reserved": reserved},
                                "VCPU": {"total": 8}},
            })  # fmt: skip
        return str(created["uuid"])

    def allocate(self, provider: str, mb: int) -> None:
        self.call("PUT", f"/allocations/{uuid.uuid4()}", {
            "allocations": {provider: {"resources": {EPC: mb, "VCPU": 1}}},
            "project_id": str(uuid.uuid4()), "user_id": str(uuid.uuid4()),
            "consumer_generation": None, "consumer_type": "INSTANCE",
        })  # fmt: skip


@pytest.fixture(scope="module")
def placement(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Placement]:
    """openstack-placement's WSGI app in a process of its own, SQLite, on loopback."""
    database = tmp_path_factory.mktemp("placement") / "placement.db"
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.console.placement_service", str(database)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=Path(__file__).parents[3],
    )  # fmt: skip
    try:
        port = first_line_match(process.stdout, r"^PORT (\d+)$", "placement").group(1)
        service = Placement(f"http://127.0.0.1:{port}")
        service.call("PUT", f"/resource_classes/{EPC}")
        host_a = service.provider("compute-a", (4056, 56))
        service.provider("compute-b", (2028, 0))
        service.provider("compute-amd", None)
        service.allocate(host_a, 512)
        service.allocate(host_a, 256)
        yield service
    finally:
        process.kill()
        process.communicate(timeout=30)


def epc_pod(name: str, node: str | None, epc: str, phase: str = "Running") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [
            {"name": "app", "image": "app", "resources": {"limits": {"sgx.intel.com/epc": epc}}},
            {"name": "sidecar", "image": "envoy"},
        ]
    }
    if node:
        spec["nodeName"] = node
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
        "status": {"phase": phase},
    }


class EmulatorThread:
    """The API-server emulator on its own event loop in a daemon thread."""

    def __init__(self) -> None:
        self.api = ApiServerEmulator("sgx-node-1", "sgx-node-2", "plain-node")
        self.api.nodes["sgx-node-1"]["status"]["capacity"].update(
            {"sgx.intel.com/epc": "4056Mi", "tdx.intel.com/keys": "63"}
        )
        self.api.nodes["sgx-node-2"]["status"]["capacity"]["sgx.intel.com/epc"] = "2028Mi"
        self.api.pods = [
            epc_pod("enclave-1", "sgx-node-1", "512Mi"),
            epc_pod("enclave-2", "sgx-node-1", "256Mi"),
            epc_pod("finished", "sgx-node-1", "1Gi", phase="Succeeded"),
            epc_pod("pending", None, "64Mi", phase="Pending"),
            epc_pod("enclave-3", "sgx-node-2", "128Mi"),
        ]
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self.api.start(), self.loop).result(30)

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "emulator",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "viewer", "user": {"token": TOKEN}}],
            "contexts": [{"name": "emulator",
                          "context": {"cluster": "emulator", "user": "viewer"}}],
        }))  # fmt: skip
        return path

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.api.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def kube() -> Iterator[EmulatorThread]:
    emulator = EmulatorThread()
    yield emulator
    emulator.close()


def test_placement_section_shows_epc_inventory_reserved_and_used(placement: Placement) -> None:
    import openstack

    fleet = PlacementFleet(
        lambda: openstack.connect(
            auth_type="admin_token", auth={"endpoint": placement.url, "token": "admin"}
        )
    )
    html = asyncio.run(fleet.section())
    rows = re.findall(r"<tr><td><span class=\"provider\">([^<]+)</span></td>"
                      r"<td>(\d+)</td><td>(\d+)</td><td>(\d+)</td></tr>", html)  # fmt: skip
    assert rows == [("compute-a", "4056", "56", "768"), ("compute-b", "2028", "0", "0")]


def test_kubernetes_section_sums_running_pods_epc_limits_per_node(kube: EmulatorThread) -> None:
    html = asyncio.run(KubernetesFleet(lambda: client_for(kube.url)).section())
    rows = re.findall(r"<tr><td><span class=\"node\">([^<]+)</span></td>"
                      r"<td>([^<]+)</td><td>([^<]+)</td><td>([^<]+)</td></tr>", html)  # fmt: skip
    assert rows == [
        ("plain-node", "none", "0", "none"),
        ("sgx-node-1", "4056Mi", "768Mi", "63"),  # the finished pod no longer counts
        ("sgx-node-2", "2028Mi", "128Mi", "none"),
    ]


def test_an_api_server_that_fails_is_a_message_not_a_crash(kube: EmulatorThread) -> None:
    kube.api.fail_with = 500
    try:
        with pytest.raises(UnavailableError, match="etcdserver"):
            asyncio.run(KubernetesFleet(lambda: client_for(kube.url)).section())
    finally:
        kube.api.fail_with = None


@pytest.fixture
def fleet_console(placement: Placement, kube: EmulatorThread, tmp_path: Path) -> Iterator[str]:
    """``scm console --kubeconfig ... --os-cloud test`` (clouds.yaml in OS_CLIENT_CONFIG_FILE)."""
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(
        json.dumps(
            {
                "clouds": {
                    "test": {
                        "auth_type": "admin_token",
                        "auth": {"endpoint": placement.url, "token": "admin"},
                    }
                }
            }
        )
    )
    env = dict(os.environ, OS_CLIENT_CONFIG_FILE=str(clouds))  # fmt: skip
    process = subprocess.Popen(
        [SCM, "--state-dir", str(tmp_path / "state"), "console", "--listen", "127.0.0.1:0",
         "--kubeconfig", str(kube.kubeconfig(tmp_path / "kubeconfig")), "--os-cloud", "test"],
        stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        yield console_url(process)
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_fleet_page_in_the_browser(
    fleet_console: str, browser: webdriver.Chrome, screenshot: Any
) -> None:
    browser.get(fleet_console + "fleet")
    nodes = [td.text for td in browser.find_elements(By.CSS_SELECTOR, "span.node")]
    providers = [td.text for td in browser.find_elements(By.CSS_SELECTOR, "span.provider")]
    assert nodes == ["plain-node", "sgx-node-1", "sgx-node-2"]
    assert providers == ["compute-a", "compute-b"]
    assert "768Mi" in browser.find_element(By.TAG_NAME, "main").text
    screenshot("fleet")
