"""ironic-python-agent inspection collector: the host report into the inspection data.

Enable it in the ramdisk with ``ipa-inspection-collectors=default,scm-tee``.
"""

from __future__ import annotations

import logging
from typing import Any

from scm.config import load_settings
from scm.errors import ScmError
from scm.openstack.ironic import REPORT_KEY
from scm.openstack.settings import OpenStackSettings
from scm.platform import discover

LOG = logging.getLogger(__name__)


def collect_tee(data: dict[str, Any], failures: Any) -> None:
    """Add ``scm_host_report`` to ``data``; a host that cannot be read is a failure."""
    try:
        root = load_settings().section("openstack", OpenStackSettings).host_root
        report = discover(root)
    except ScmError as exc:
        failures.add("scm: SGX/TDX discovery failed: %s", exc)
        return
    for note in report.diagnostics:
        LOG.warning("scm: %s", note)
    data[REPORT_KEY] = report.to_dict()
