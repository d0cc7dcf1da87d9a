"""Bad SGX requests fail with a message a user can act on, through nova's API."""

from __future__ import annotations

import copy

from lxml import etree
from nova.tests.functional.api import client
from oslo_utils.fixture import uuidsentinel as uuids

from tests.integration.openstack.nova_functional.nova_harness import (
    EPC,
    SGX_TRAIT,
    ScmServersTestBase,
)


class TestSgxRequestValidation(ScmServersTestBase):
    def setUp(self) -> None:
        super().setUp()
        self.start_compute("compute1")

    def _image_requiring_sgx(self) -> str:
        image = copy.deepcopy(self.glance.image1)
        image["id"] = uuids.sgx_image
        image["properties"][f"trait:{SGX_TRAIT}"] = "required"
        self.glance.create(None, image)
        return str(image["id"])

    def test_epc_that_is_not_a_positive_integer_is_rejected_by_the_flavor_api(self) -> None:
        flavor = self._create_flavor(memory_mb=1024, vcpu=2)
        # nova alone accepts any integer for resources:CUSTOM_*; scm's validator adds min 1.
        for bad, reason in (
            ("0", "less than the min value of '1'"),
            ("-4", "less than the min value of '1'"),
            ("64M", "not a valid integer"),
        ):
            error = self.assertRaises(
                client.OpenStackApiException,
                self.api_fixture.admin_api.post_extra_spec,
                flavor,
                {"extra_specs": {f"resources:{EPC}": bad}},
            )
            self.assertEqual(400, error.response.status_code)
            self.assertIn(reason, error.response.text)

    def test_epc_without_the_sgx_trait_fails_the_build_with_the_reason(self) -> None:
        server = self._create_server(
            flavor_id=self.sgx_flavor(64, trait=None), networks="none", expected_state="ERROR"
        )
        self.assertIn(f"trait:{SGX_TRAIT}=required", server["fault"]["message"])
        # Aborted, not rescheduled: nothing stays allocated.
        self.assertEqual({}, self._get_allocations_by_server_uuid(server["id"]))

    def test_trait_forbidden_by_flavor_but_required_by_image_is_refused(self) -> None:
        flavor = self._create_flavor(
            memory_mb=1024, vcpu=2, extra_spec={f"trait:{SGX_TRAIT}": "forbidden"}
        )
        server = self._create_server(
            flavor_id=flavor,
            image_uuid=self._image_requiring_sgx(),
            networks="none",
            expected_state="ERROR",
        )
        # placement cannot satisfy required and forbidden at once: no host is chosen.
        self.assertIn("No valid host", server["fault"]["message"])

    def test_image_requiring_sgx_supplies_the_trait_for_an_epc_flavor(self) -> None:
        server = self._create_server(
            flavor_id=self.sgx_flavor(32, trait=None),
            image_uuid=self._image_requiring_sgx(),
            networks="none",
        )
        epc = etree.fromstring(self.domain_xml(server)).find("devices/memory[@model='sgx-epc']")
        self.assertEqual("32768", epc.findtext("target/size"))
