"""ironic inspection hook: SGX/TDX node traits and the ``sgx_epc_mb`` property.

Enable it on the conductor with ``[inspector] hooks = $default_hooks,scm-tee`` and the
``scm-tee`` collector in the ramdisk. Traits this hook owns (``HW_CPU_X86_SGX``,
``CUSTOM_SGX_FLC``, ``CUSTOM_SGX2``, ``HW_CPU_X86_INTEL_TDX``) follow the latest inspection;
other traits on the node are kept.
"""

from __future__ import annotations

import logging
from typing import Any

from ironic import objects
from ironic.drivers.modules.inspector.hooks import base

from scm.errors import ScmError
from scm.openstack.ironic import REPORT_KEY
from scm.openstack.ironic.facts import MANAGED_TRAITS, node_facts

LOG = logging.getLogger(__name__)


class TeeHook(base.InspectionHook):  # type: ignore[misc]
    """Sets SGX/TDX traits and ``sgx_epc_mb`` from the ``scm-tee`` collector's report."""

    def __call__(self, task: Any, inventory: Any, plugin_data: dict[str, Any]) -> None:
        node = task.node
        if REPORT_KEY not in plugin_data:
            LOG.warning(
                "Node %s: no %s in the inspection data; enable the scm-tee collector in the "
                "ramdisk (ipa-inspection-collectors)",
                node.uuid,
                REPORT_KEY,
            )
            return
        try:
            facts = node_facts(plugin_data[REPORT_KEY])
        except ScmError as exc:
            # A refusal leaves the node as it was: traits and properties untouched.
            LOG.warning("Node %s: %s; SGX/TDX traits left unchanged", node.uuid, exc)
            return
        current = set(node.traits.get_trait_names()) if node.traits else set()
        wanted = (current - MANAGED_TRAITS) | facts.traits
        if wanted != current:
            objects.TraitList.create(task.context, node.id, sorted(wanted))
        node.set_property("sgx_epc_mb", facts.sgx_epc_mb)
        node.save()
        LOG.info(
            "Node %s: SGX/TDX traits %s, sgx_epc_mb %d",
            node.uuid,
            sorted(facts.traits),
            facts.sgx_epc_mb,
        )
