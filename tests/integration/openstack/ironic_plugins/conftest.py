"""Run ironic's test base under pytest.

ironic's test package picks oslo.service's threading backend, so it loads before any other
ironic module.
"""

import ironic.tests.unit  # noqa: F401
from ironic.tests import base as ironic_test

from tests.integration.openstack.pytest_compat import keep_test_method_through_clear_attrs

keep_test_method_through_clear_attrs(ironic_test.TestCase)
