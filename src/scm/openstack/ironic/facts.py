"""Node traits and properties from a host report in its JSON form (``scm.platform/v1``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scm.errors import InputError
from scm.platform.render import TRAIT_SGX, TRAIT_SGX2, TRAIT_SGX_FLC, TRAIT_TDX
from scm.platform.report import MIB, SCHEMA

# The traits the hook owns on a node: set when present, removed when gone.
MANAGED_TRAITS = frozenset({TRAIT_SGX, TRAIT_SGX_FLC, TRAIT_SGX2, TRAIT_TDX})


@dataclass(frozen=True)
class NodeFacts:
    traits: frozenset[str]
    sgx_epc_mb: int


def node_facts(report: Mapping[str, Any]) -> NodeFacts:
    """What a bare-metal node offers for SGX and TDX according to ``report``."""
    if not isinstance(report, Mapping) or report.get("schema") != SCHEMA:
        raise InputError(f"inspection data holds no {SCHEMA} host report")
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
