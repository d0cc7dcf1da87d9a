"""TDX through nova's in-tree path on a host scm reports ready; EPC under unified limits."""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
from pathlib import Path
from unittest import mock

from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.functional.api import client
from oslo_limit import fixture as limit_fixture
from oslo_utils import versionutils
from oslo_utils.fixture import uuidsentinel as uuids

import fixtures
from scm.openstack.check_host import FIRMWARE_DESCRIPTORS, QGS_SOCKET, HostVersions, check_host
from scm.platform import discover
from tests.hostroots import materialize
from tests.integration.openstack.nova_functional.nova_harness import EPC, ScmServersTestBase

LIBVIRT = (10, 0, 0)
QEMU = (8, 2, 0)


def ready_tdx_root(destination: Path) -> Path:
    """The tdx-host fixture after the operator installed Intel's QGS and OVMF for TDX."""
    root = materialize("tdx-host", destination)
    (root / QGS_SOCKET).parent.mkdir(parents=True)
    (root / QGS_SOCKET).touch()
    firmware = root / FIRMWARE_DESCRIPTORS
    firmware.mkdir(parents=True)
    descriptor = {"interface-types": ["uefi"], "features": ["intel-tdx", "verbose-dynamic"]}
    (firmware / "60-ovmf-x86_64-inteltdx.json").write_text(json.dumps(descriptor))
    return root


class TestTdxServers(ScmServersTestBase):
    def setUp(self) -> None:
        super().setUp()
        self.tmp = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.tmp)
        image = copy.deepcopy(self.glance.image1)
        image["id"] = uuids.tdx_image
        image["properties"].update(
            {
                "hw_firmware_type": "uefi",
                "hw_firmware_stateless": "True",
                "hw_machine_type": "q35",
                "hw_mem_encryption": "True",
                "hw_mem_encryption_model": "intel-tdx",
                "hw_video_model": "none",
            }
        )
        self.glance.create(None, image)
        self.flags(cpu_mode="host-passthrough", group="libvirt")
        # The fake libvirt host stands for the same machine as the host root: TDX in the
        # domain capabilities and the misc cgroup's 63 TDX key IDs.
        self.useFixture(
            fixtures.MockPatch("nova.virt.libvirt.host.Host._get_tdx_capacity", return_value=63)
        )
        self.useFixture(
            fixtures.MockPatchObject(
                fakelibvirt.virConnect,
                "_domain_capability_features",
                new_callable=mock.PropertyMock,
                return_value=fakelibvirt.virConnect._domain_capability_features_with_TDX,
            )
        )

    def test_tdx_flavor_boots_on_a_host_check_host_reports_ready(self) -> None:
        root = ready_tdx_root(self.tmp)
        readiness = check_host(discover(root), HostVersions(libvirt=LIBVIRT, qemu=QEMU))
        self.assertTrue(readiness.ready("tdx"), readiness)

        self.flags(host_root=str(root), group="scm")
        self.start_compute(
            "compute1",
            libvirt_version=versionutils.convert_version_to_int(LIBVIRT),
            qemu_version=versionutils.convert_version_to_int(QEMU),
        )
        rp = self.compute_rp_uuids["compute1"]
        tree = self.placement.get(f"/resource_providers?in_tree={rp}", version="1.14").body
        tree_traits = {
            t for p in tree["resource_providers"] for t in self._get_provider_traits(p["uuid"])
        }
        self.assertIn("HW_CPU_X86_INTEL_TDX", tree_traits)
        # scm adds the tdx-host's EPC (it has SGX for quoting) without touching nova's TDX.
        self.assertIn(EPC, self._get_provider_inventory(rp))

        server = self._create_server(image_uuid=uuids.tdx_image, networks="none")
        self.assertIn('<launchSecurity type="tdx"', self.domain_xml(server))
        allocations = self._get_allocations_by_server_uuid(server["id"])
        resources = {rc for alloc in allocations.values() for rc in alloc["resources"]}
        self.assertIn("MEM_ENCRYPTION_CONTEXT", resources)


class TestEpcQuota(ScmServersTestBase):
    """nova's unified limits (oslo.limit; keystone replaced by oslo.limit's fixture)."""

    def setUp(self) -> None:
        super().setUp()
        self.api.project_id = "tenant"
        self.admin_api.project_id = "admin"
        self.flags(driver="nova.quota.UnifiedLimitsDriver", group="quota")
        registered = {
            "servers": 10,
            "class:VCPU": 64,
            "class:MEMORY_MB": 65536,
            "class:DISK_GB": 1000,
            f"class:{EPC}": 1024,
        }
        per_project = {"tenant": {f"class:{EPC}": 100}}
        self.useFixture(limit_fixture.LimitFixture(registered, per_project))
        self.start_compute("compute1")

    def test_server_that_would_exceed_the_epc_limit_is_refused(self) -> None:
        flavor = self.sgx_flavor(64)
        self._create_server(flavor_id=flavor, networks="none", api=self.api)
        error = self.assertRaises(
            client.OpenStackApiException,
            self._create_server,
            flavor_id=flavor,
            networks="none",
            api=self.api,
        )
        self.assertEqual(403, error.response.status_code)
        self.assertIn(f"class:{EPC}", error.response.text)
        # Another project falls under the registered (default) limit of 1024 MiB.
        for _ in range(2):
            self._create_server(flavor_id=flavor, networks="none", api=self.admin_api)
