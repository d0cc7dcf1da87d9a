"""The host page: a bar per NUMA node from the HostReport, and a message for a bad root."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from scm.console import ConsoleSources, console_app
from scm.console.host_page import epc_chart
from scm.platform.report import MIB, EpcSection
from tests.hostroots import HOSTS
from tests.unit.console.helpers import with_client


def get(root: Path, path: str = "/console/host") -> tuple[int, str]:
    async def body(client: Any) -> tuple[int, str]:
        response = await client.get(path)
        return response.status, await response.text()

    return with_client(console_app(ConsoleSources(host_root=root)), body)


def test_bars_are_per_node_and_proportional() -> None:
    sections = (
        EpcSection(64 * MIB, node=0),
        EpcSection(32 * MIB, node=0),  # a node can have several sections
        EpcSection(48 * MIB, node=1),
    )
    chart = epc_chart(sections)
    widths = dict(re.findall(r'data-node="(\d)">.*?<rect x="90" y="\d+" width="(\d+)"', chart))
    assert widths == {"0": "480", "1": "240"}
    assert "96 MiB" in chart and "48 MiB" in chart


def test_tdx_host_shows_key_ids_and_no_epc_inventory_without_sgx() -> None:
    status, page = get(HOSTS / "tdx-host" / "root")
    assert status == 200
    assert re.search(r"<dt>TDX key IDs</dt><dd>63</dd>", page)
    assert "HW_CPU_X86_INTEL_TDX" in page


def test_bios_disabled_sgx_shows_what_to_fix() -> None:
    _, page = get(HOSTS / "sgx-bios-disabled" / "root")
    diagnostics = page.split('id="diagnostics"', 1)[1]
    assert "<li>" in diagnostics and "BIOS" in diagnostics


def test_a_root_that_is_not_a_linux_root_is_a_message(tmp_path: Path) -> None:
    status, page = get(tmp_path)
    assert status == 200 and f"Cannot read the host under {tmp_path}" in page


def test_unknown_static_files_are_not_served(tmp_path: Path) -> None:
    status, _ = get(tmp_path, "/console/static/..%2f..%2fapp.py")
    assert status == 404
