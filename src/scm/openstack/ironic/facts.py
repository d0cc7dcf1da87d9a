"""Node traits and properties from a host report in its JSON form (``scm.platform/v1``).

The report arrives in the inspection data a node's ramdisk sends: whoever controls the
node controls it. It is validated against :data:`REPORT_SCHEMA` (the fields this module
reads, with their types and bounds) before anything is taken from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema

from scm.errors import InputError
from scm.platform.render import TRAIT_SGX, TRAIT_SGX2, TRAIT_SGX_FLC, TRAIT_TDX
from scm.platform.report import MIB, SCHEMA

# The traits the hook owns on a node: set when present, removed when gone.
MANAGED_TRAITS = frozenset({TRAIT_SGX, TRAIT_SGX_FLC, TRAIT_SGX2, TRAIT_TDX})


_FLAG = {"type": ["boolean", "null"]}
# The part of scm.platform/v1 the hook reads. Other fields may be present and are ignored.
REPORT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["schema"],
    "properties": {
        "schema": {"const": SCHEMA},
        "sgx": {
            "type": ["object", "null"],
            "properties": {
                "enabled": _FLAG,
                "flc": _FLAG,
                "sgx2": _FLAG,
                # No EPC exceeds the 52-bit physical address space.
                "epc_total_bytes": {"type": ["integer", "null"], "minimum": 0, "maximum": 1 << 52},
            },
        },
        "tdx": {"type": ["object", "null"], "properties": {"host_enabled": _FLAG}},
    },
}
_VALIDATOR = jsonschema.Draft202012Validator(REPORT_SCHEMA)


@dataclass(frozen=True)
class NodeFacts:
    traits: frozenset[str]
    sgx_epc_mb: int


def node_facts(report: Mapping[str, Any]) -> NodeFacts:
    """What a bare-metal node offers for SGX and TDX according to ``report``.

    Raises InputError naming the first offending field (never its value: the peer chose it).
    """
    check_report(report)
    sgx = report.get("sgx") or {}
    tdx = report.get("tdx") or {}
    traits = set()
    epc_mb = 0
    if sgx.get("enabled"):
        traits.add(TRAIT_SGX)
        epc_mb = int(sgx.get("epc_total_bytes") or 0) // MIB
        if sgx.get("flc"):
            traits.add(TRAIT_SGX_FLC)
        if sgx.get("sgx2"):
            traits.add(TRAIT_SGX2)
    if tdx.get("host_enabled"):
        traits.add(TRAIT_TDX)
    return NodeFacts(traits=frozenset(traits), sgx_epc_mb=epc_mb)


def check_report(report: object) -> None:
    """Raise InputError unless ``report`` matches :data:`REPORT_SCHEMA`."""
    if not isinstance(report, Mapping) or report.get("schema") != SCHEMA:
        raise InputError(f"inspection data holds no {SCHEMA} host report")
    error = jsonschema.exceptions.best_match(_VALIDATOR.iter_errors(dict(report)))
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "the report"
        raise InputError(
            f"inspection data: {SCHEMA} host report refused: {where} fails the "
            f"{error.validator!r} check"
        )
