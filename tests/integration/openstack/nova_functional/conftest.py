"""Run nova's own functional harness (testtools TestCases) under pytest."""

from nova import test as nova_test

from tests.integration.openstack.pytest_compat import keep_test_method_through_clear_attrs

keep_test_method_through_clear_attrs(nova_test.TestCase)
