"""nova's functional test base for libvirt, with scm's driver and a fixture host root."""

from __future__ import annotations

import time
from typing import Any, ClassVar
from unittest import mock

from lxml import etree
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.functional.libvirt import base
from oslo_config import cfg

from scm.openstack.nova_driver import conf as scm_conf
from tests.hostroots import HOSTS

scm_conf.register(cfg.CONF)

SGX_TRAIT = "HW_CPU_X86_SGX"
EPC = "CUSTOM_SGX_EPC_MB"


class ScmServersTestBase(base.ServersTestBase):
    """Boots servers through nova's real API, conductor, scheduler and placement."""

    microversion = "latest"
    ADDITIONAL_FILTERS: ClassVar[list[str]] = []

    def setUp(self) -> None:
        super().setUp()
        # nova's fake libvirt re-renders XMLDesc from what it understood; keep the document
        # nova actually defined, keyed by domain UUID.
        self.defined_xml: dict[str, str] = {}
        define = fakelibvirt.Connection.defineXML

        def recording_define(conn: Any, xml: str) -> Any:
            self.defined_xml[etree.fromstring(xml).findtext("uuid")] = xml
            return define(conn, xml)

        patcher = mock.patch.object(fakelibvirt.Connection, "defineXML", recording_define)
        patcher.start()
        self.addCleanup(patcher.stop)

    def _setup_compute_service(self) -> None:
        self.flags(compute_driver="scm_libvirt.LibvirtDriver")
        self.use_host("sgx-2socket")

    def use_host(self, name: str, **scm_flags: Any) -> None:
        """Discover SGX/TDX from fixture host ``name`` for computes started from now on."""
        self.flags(host_root=str(HOSTS / name / "root"), group="scm", **scm_flags)

    def sgx_flavor(self, epc_mb: int | str, trait: str | None = "required", **specs: str) -> str:
        extra_spec = {f"resources:{EPC}": str(epc_mb), **specs}
        if trait:
            extra_spec[f"trait:{SGX_TRAIT}"] = trait
        return str(self._create_flavor(memory_mb=1024, vcpu=2, extra_spec=extra_spec))

    def settled_status(self, server: dict[str, Any], attempts: int = 100) -> str:
        """Poll until ``server`` leaves BUILD; its final status (ACTIVE or ERROR)."""
        for _ in range(attempts):
            status = str(self.api.get_server(server["id"])["status"])
            if status != "BUILD":
                return status
            time.sleep(0.05)
        raise AssertionError(f"server {server['id']} still building after {attempts} polls")

    def domain_xml(self, server: dict[str, Any]) -> str:
        """The domain XML nova's driver defined in libvirt for ``server``."""
        return self.defined_xml[server["id"]]
