"""Let OpenStack's testtools TestCases run under pytest.

nova's and ironic's TestCase delete every public instance attribute in a cleanup to free
memory. pytest stores the bound test method on the instance for the run and deletes it
afterwards, which then fails. Keep that one attribute; the rest of the cleanup is unchanged.
"""

from __future__ import annotations

from typing import Any


def keep_test_method_through_clear_attrs(test_case: type) -> None:
    clear_attrs = test_case._clear_attrs

    def clear_attrs_but_the_test_method(self: Any) -> None:
        name = self._testMethodName
        method = self.__dict__.get(name)
        clear_attrs(self)
        if method is not None:
            self.__dict__[name] = method

    test_case._clear_attrs = clear_attrs_but_the_test_method
