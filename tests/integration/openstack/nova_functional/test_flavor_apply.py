"""``flavor-spec --apply``'s openstacksdk calls against nova's real API (in process)."""

from __future__ import annotations

from keystoneauth1 import session, token_endpoint
from nova.tests.functional import integrated_helpers
from openstack import connection

from scm.errors import NotFoundError
from scm.openstack.flavor_spec import confidential_flavor
from scm.openstack.sdk import apply_flavor_spec


class TestFlavorSpecApply(integrated_helpers._IntegratedTestBase):
    compute_driver = "fake.SmallFakeDriver"
    ADMIN_API = True

    def sdk(self) -> connection.Connection:
        """An openstacksdk connection to the API the harness serves, as its admin."""
        url = self.api_fixture.admin_api.base_url
        auth = token_endpoint.Token(url, "admin")
        # nova's harness authenticates by the headers keystonemiddleware would have set.
        headers = {
            "X-Auth-User": "admin",
            "X-User-Id": "admin",
            "X-Auth-Project-Id": "admin",
            "X-Roles": "reader,member,admin",
        }
        sess = session.Session(auth=auth, additional_headers=headers)
        return connection.Connection(session=sess, compute_endpoint_override=url)

    def test_apply_sets_the_extra_specs_through_the_compute_api(self) -> None:
        flavor_id = self._create_flavor(name="sgx.small", memory_mb=1024, vcpu=1)
        apply_flavor_spec(self.sdk(), confidential_flavor(epc_mb=64), "sgx.small", None)
        specs = self.api_fixture.admin_api.get_extra_specs(flavor_id)
        self.assertEqual(
            {"resources:CUSTOM_SGX_EPC_MB": "64", "trait:HW_CPU_X86_SGX": "required"}, specs
        )

    def test_unknown_flavor_is_not_found(self) -> None:
        self.assertRaises(
            NotFoundError,
            apply_flavor_spec,
            self.sdk(),
            confidential_flavor(epc_mb=64),
            "no-such-flavor",
            None,
        )
