"""What a host can do for SGX and TDX: discovery, the HostReport model, renderers."""

from scm.platform.discover import discover
from scm.platform.render import RENDERERS, placement_inventories, placement_traits
from scm.platform.report import SCHEMA, CpuSummary, EpcSection, HostReport, SgxReport, TdxReport

__all__ = [
    "RENDERERS",
    "SCHEMA",
    "CpuSummary",
    "EpcSection",
    "HostReport",
    "SgxReport",
    "TdxReport",
    "discover",
    "placement_inventories",
    "placement_traits",
]
