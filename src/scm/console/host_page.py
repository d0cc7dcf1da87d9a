"""The host page: the HostReport of this host (or a ``--root`` tree), as a person reads it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from scm.console.html import Html, facts, join, table, tag, text, yes_no
from scm.errors import ScmError
from scm.platform import HostReport, discover, placement_inventories, placement_traits
from scm.platform.report import MIB, EpcSection

BAR_WIDTH = 480
BAR_HEIGHT = 22


async def host_section(root: Path) -> Html:
    """The report of the host under ``root``, or a one-line error when it cannot be read."""
    try:
        report = await asyncio.to_thread(discover, root)
    except ScmError as exc:
        return tag("p", f"Cannot read the host under {root}: {exc}", class_="error")
    return render_host(report)


def render_host(report: HostReport) -> Html:
    sgx, tdx, cpu = report.sgx, report.tdx, report.cpu
    summary = facts(
        [
            ("root", report.root),
            ("CPU", f"{cpu.model_name or 'unknown'} ({cpu.vendor or 'unknown vendor'})"),
            ("SGX supported", yes_no(sgx.supported)),
            ("SGX usable", yes_no(sgx.enabled)),
            ("FLC / SGX1 / SGX2", join([yes_no(sgx.flc), " / ", yes_no(sgx.sgx1), " / ",
                                        yes_no(sgx.sgx2)])),
            ("SGX devices", ", ".join(sgx.devices) or "none"),
            ("EPC total", _mib(sgx.epc_total_bytes)),
            ("TDX host", yes_no(tdx.host_enabled)),
            ("TDX key IDs", tdx.keys_total),
            ("TDX guest", yes_no(tdx.guest)),
            ("quote interface", tdx.quote_interface),
        ]
    )  # fmt: skip
    inventories = placement_inventories(report)
    placement = join(
        [
            tag("h2", "Placement"),
            facts([("traits", ", ".join(placement_traits(report)) or "none")]),
            table(
                ["resource class", "total", "reserved", "max unit"],
                [
                    [name, str(inv["total"]), str(inv["reserved"]), str(inv["max_unit"])]
                    for name, inv in inventories.items()
                ],
            )
            if inventories
            else tag("p", "No inventory: this host has no usable EPC."),
        ]
    )
    return join(
        [
            tag("section", tag("h2", "Facts"), summary, id="facts"),
            tag("section", tag("h2", "EPC per NUMA node"), epc_chart(sgx.epc_sections), id="epc"),
            tag("section", tag("h2", "Diagnostics"), _diagnostics(report), id="diagnostics"),
            tag("section", placement, id="placement"),
        ]
    )


def epc_chart(sections: tuple[EpcSection, ...]) -> Html:
    """One horizontal SVG bar per NUMA node, lengths relative to the largest node."""
    per_node: dict[str, int] = {}
    for section in sections:
        node = "?" if section.node is None else str(section.node)
        per_node[node] = per_node.get(node, 0) + section.size_bytes
    if not per_node:
        return tag("p", "No EPC sections.")
    largest = max(per_node.values()) or 1
    label_width = 90
    height = BAR_HEIGHT * len(per_node) + 4
    rows = []
    for index, (node, size) in enumerate(sorted(per_node.items())):
        y = index * BAR_HEIGHT + 2
        width = max(1, round(BAR_WIDTH * size / largest))
        rows.append(
            tag(
                "g",
                tag("title", f"node {node}: {_mib(size)}"),
                tag("text", f"node {node}", x=0, y=y + 15),
                tag("rect", x=label_width, y=y, width=width, height=BAR_HEIGHT - 4,
                    class_="bar"),
                tag("text", _mib(size), x=label_width + width + 6, y=y + 15),
                class_="epc-node",
                data_node=node,
            )
        )  # fmt: skip
    total_width = label_width + BAR_WIDTH + 120
    return tag(
        "svg",
        *rows,
        xmlns="http://www.w3.org/2000/svg",
        width=total_width,
        height=height,
        role="img",
        aria_label="EPC per NUMA node",
    )


def _diagnostics(report: HostReport) -> Html:
    if not report.diagnostics:
        return tag("p", "Nothing to fix.", class_="ok")
    return tag("ul", *(tag("li", note) for note in report.diagnostics))


def _mib(size: int | None) -> Html:
    if size is None:
        return text(None)
    return text(f"{size / MIB:g} MiB")
