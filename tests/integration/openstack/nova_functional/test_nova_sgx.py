"""SGX servers through nova's real API, scheduler, placement and libvirt driver code."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from lxml import etree
from nova import exception

from tests.integration.openstack.nova_functional.nova_harness import (
    EPC,
    SGX_TRAIT,
    ScmServersTestBase,
)
from tests.integration.openstack.nova_functional.real_libvirt import define_validated

# sgx-2socket: 2 x 2028 MiB of EPC (2126512128 bytes per socket), FLC and SGX2.
HOST_EPC_MB = 4056


class TestSgxServers(ScmServersTestBase):
    def test_compute_node_reports_epc_and_sgx_traits_beside_novas_own(self) -> None:
        self.start_compute("compute1")
        rp = self.compute_rp_uuids["compute1"]
        inventory = self._get_provider_inventory(rp)
        self.assertEqual(HOST_EPC_MB, inventory[EPC]["total"])
        self.assertEqual(0, inventory[EPC]["reserved"])
        for nova_class in ("VCPU", "MEMORY_MB", "DISK_GB"):
            self.assertIn(nova_class, inventory)
        traits = set(self._get_provider_traits(rp))
        self.assertLessEqual({SGX_TRAIT, "CUSTOM_SGX_FLC", "CUSTOM_SGX2"}, traits)
        # nova's own traits (virt type, image formats, CPU flags) are still there.
        self.assertIn("COMPUTE_IMAGE_TYPE_RAW", traits)

    def test_sgx_server_holds_epc_and_its_domain_has_the_epc_device(self) -> None:
        self.start_compute("compute1")
        flavor = self.sgx_flavor(64)
        server = self._create_server(flavor_id=flavor, networks="none")

        allocations = self._get_allocations_by_server_uuid(server["id"])
        rp = self.compute_rp_uuids["compute1"]
        self.assertEqual(64, allocations[rp]["resources"][EPC])
        self.assertEqual(64, self._get_provider_usages(rp)[EPC])

        xml = self.domain_xml(server)
        dom = etree.fromstring(xml)
        epc = dom.findall("devices/memory[@model='sgx-epc']")
        self.assertEqual(1, len(epc))
        self.assertEqual("65536", epc[0].findtext("target/size"))
        self.assertEqual("KiB", epc[0].find("target/size").get("unit"))
        self.assertEqual("0", epc[0].findtext("target/node"))
        cells = dom.findall("cpu/numa/cell")
        self.assertEqual(["0"], [c.get("id") for c in cells])
        self.assertEqual(str(1024 * 1024), cells[0].get("memory"))
        max_memory = dom.find("maxMemory")
        self.assertEqual(str((1024 + 64) * 1024), max_memory.text)
        features = {f.get("name") for f in dom.findall("cpu/feature[@policy='require']")}
        self.assertLessEqual({"sgx", "sgx1", "sgxlc", "sgx2", "sgx-provisionkey"}, features)

        # The same document is valid for real libvirt, not only for nova's fake.
        kept = etree.fromstring(define_validated(xml))
        self.assertEqual("65536", kept.findtext("devices/memory[@model='sgx-epc']/target/size"))

    def test_epc_spreads_over_the_guest_numa_nodes(self) -> None:
        self.start_compute("compute1")
        flavor = self.sgx_flavor(96, **{"hw:numa_nodes": "2"})
        server = self._create_server(flavor_id=flavor, networks="none")
        dom = etree.fromstring(self.domain_xml(server))
        sizes = {
            m.findtext("target/node"): m.findtext("target/size")
            for m in dom.findall("devices/memory[@model='sgx-epc']")
        }
        self.assertEqual({"0": str(48 * 1024), "1": str(48 * 1024)}, sizes)
        self.assertEqual("2", dom.find("maxMemory").get("slots"))
        define_validated(self.domain_xml(server))

    def test_request_larger_than_free_epc_is_no_valid_host(self) -> None:
        self.start_compute("compute1")
        server = self._create_server(
            flavor_id=self.sgx_flavor(HOST_EPC_MB + 1), networks="none", expected_state="ERROR"
        )
        self.assertIn("No valid host", server["fault"]["message"])
        self.assertEqual({}, self._get_allocations_by_server_uuid(server["id"]))

    def test_overrides_from_nova_conf_shape_the_inventory(self) -> None:
        self.use_host("sgx-2socket", sgx_epc_mb=1000, reserved_sgx_epc_mb=100)
        self.start_compute("compute1")
        inventory = self._get_provider_inventory(self.compute_rp_uuids["compute1"])[EPC]
        self.assertEqual(
            (1000, 100, 900), (inventory["total"], inventory["reserved"], inventory["max_unit"])
        )
        self._create_server(flavor_id=self.sgx_flavor(901), networks="none", expected_state="ERROR")
        self._create_server(flavor_id=self.sgx_flavor(900), networks="none")

    def test_host_without_sgx_has_no_epc_and_no_sgx_traits(self) -> None:
        self.use_host("no-tee")
        self.start_compute("compute1")
        rp = self.compute_rp_uuids["compute1"]
        self.assertNotIn(EPC, self._get_provider_inventory(rp))
        self.assertFalse({"CUSTOM_SGX_FLC", "CUSTOM_SGX2"} & set(self._get_provider_traits(rp)))


class TestSgxCapacity(ScmServersTestBase):
    def test_concurrent_boots_never_over_commit_epc(self) -> None:
        self.use_host("sgx-2socket", sgx_epc_mb=100)
        self.start_compute("compute1")
        flavor = self.sgx_flavor(30)
        bodies = [self._build_server(flavor_id=flavor, networks="none") for _ in range(6)]
        with ThreadPoolExecutor(max_workers=6) as pool:
            posted = list(pool.map(lambda b: self.api.post_server({"server": b}), bodies))
        states = [self.settled_status(server) for server in posted]
        self.assertEqual(3, states.count("ACTIVE"))
        self.assertEqual(3, states.count("ERROR"))
        self.assertEqual(90, self._get_provider_usages(self.compute_rp_uuids["compute1"])[EPC])


class TestMisconfiguredHost(ScmServersTestBase):
    def test_epc_override_larger_than_the_host_stops_compute_with_the_reason(self) -> None:
        self.use_host("sgx-2socket", sgx_epc_mb=HOST_EPC_MB + 1)
        error = self.assertRaises(exception.InvalidConfiguration, self.start_compute, "compute1")
        self.assertIn("sgx_epc_mb = 4057 exceeds the host's usable EPC of 4056 MiB", str(error))

    def test_sgx_in_cpu_but_no_epc_runs_compute_without_sgx_and_says_why(self) -> None:
        self.use_host("sgx-bios-disabled")
        self.start_compute("compute1")
        rp = self.compute_rp_uuids["compute1"]
        self.assertNotIn(EPC, self._get_provider_inventory(rp))
        self.assertIn("SGX guests unavailable on this host", self.stdlog.logger.output)
        self.assertIn("enable it in the BIOS", self.stdlog.logger.output)
