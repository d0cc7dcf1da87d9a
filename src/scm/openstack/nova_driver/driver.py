"""nova's LibvirtDriver plus SGX: EPC inventory and traits, EPC devices in guests."""

from __future__ import annotations

import copy
import logging
from typing import Any

from nova import exception
from nova.virt.libvirt import driver as libvirt_driver
from oslo_config import cfg

from scm.errors import ScmError
from scm.openstack.nova_driver import conf as scm_conf
from scm.openstack.nova_driver.guest_config import add_sgx
from scm.openstack.provider import SGX_TRAITS, SgxProvider, sgx_provider
from scm.openstack.request import sgx_request
from scm.platform import HostReport, discover
from scm.platform.render import RC_SGX_EPC_MB

CONF = cfg.CONF
scm_conf.register(CONF)
LOG = logging.getLogger(__name__)


class LibvirtDriver(libvirt_driver.LibvirtDriver):  # type: ignore[misc]
    """Adds SGX to nova's libvirt driver; everything else is nova's."""

    _scm_host: HostReport | None = None
    _scm_sgx: SgxProvider | None = None

    def init_host(self, host: str) -> None:
        super().init_host(host)
        self._scm_refresh()
        assert self._scm_sgx is not None
        for warning in self._scm_sgx.warnings:
            LOG.warning("SGX guests unavailable on this host: %s", warning)
        LOG.info("SGX EPC offered to guests: %d MiB", self._scm_sgx.epc_total_mb)

    def _scm_refresh(self) -> None:
        """Discover the host and check [scm] against it; a bad setting stops the service."""
        try:
            report = discover(CONF.scm.host_root)
            provider = sgx_provider(report, CONF.scm.sgx_epc_mb, CONF.scm.reserved_sgx_epc_mb)
        except ScmError as exc:
            raise exception.InvalidConfiguration(f"scm: {exc}") from None
        self._scm_host, self._scm_sgx = report, provider

    def update_provider_tree(
        self, provider_tree: Any, nodename: str, allocations: Any = None
    ) -> None:
        super().update_provider_tree(provider_tree, nodename, allocations=allocations)
        if self._scm_sgx is None:
            self._scm_refresh()
        sgx = self._scm_sgx
        assert sgx is not None
        # nova has just written its own inventory and traits: add to them, replace nothing.
        inventory = dict(provider_tree.data(nodename).inventory)
        inventory.pop(RC_SGX_EPC_MB, None)
        inventory.update(copy.deepcopy(sgx.inventory))
        provider_tree.update_inventory(nodename, inventory)
        provider_tree.add_traits(nodename, *sorted(sgx.traits))
        # HW_CPU_X86_SGX is also one of nova's CPU traits: only drop the custom ones.
        stale = {t for t in SGX_TRAITS - sgx.traits if t.startswith("CUSTOM_")}
        provider_tree.remove_traits(nodename, *sorted(stale))
        self.provider_tree = copy.deepcopy(provider_tree)

    def _get_guest_config(
        self,
        instance: Any,
        network_info: Any,
        image_meta: Any,
        disk_info: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        guest = super()._get_guest_config(
            instance, network_info, image_meta, disk_info, *args, **kwargs
        )
        image_traits = image_meta.properties.get("traits_required", [])
        try:
            request = sgx_request(instance.flavor.extra_specs, image_traits)
        except ScmError as exc:
            # InvalidInput aborts the build without a reschedule; the reason is the fault.
            raise exception.InvalidInput(reason=str(exc)) from None
        if request is not None:
            if self._scm_host is None or not self._scm_sgx or not self._scm_sgx.epc_total_mb:
                raise exception.InvalidInput(reason="this compute host offers no SGX EPC")
            add_sgx(guest, request.epc_mb, self._scm_host.sgx)
        return guest
