"""The ``[openstack]`` table of scm's settings (``SCM_OPENSTACK_*`` variables)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class OpenStackSettings:
    # Where the ramdisk collector reads /proc, /sys and /dev (tests point it at a host root).
    host_root: Path = Path("/")
