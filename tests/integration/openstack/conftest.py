"""Run nova's own functional harness (testtools TestCases) under pytest.

nova's TestCase deletes every public instance attribute in a cleanup to free memory; pytest
stores the bound test method on the instance for the run and deletes it afterwards, which
then fails. Keep that one attribute; everything else in nova's cleanup stays as it is.
"""

from __future__ import annotations

from typing import Any

from nova import test as nova_test

_clear_attrs = nova_test.TestCase._clear_attrs


def _clear_attrs_but_the_test_method(self: Any) -> None:
    name = self._testMethodName
    method = self.__dict__.get(name)
    _clear_attrs(self)
    if method is not None:
        self.__dict__[name] = method


nova_test.TestCase._clear_attrs = _clear_attrs_but_the_test_method
