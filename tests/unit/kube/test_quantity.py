"""Quantities as Kubernetes writes them, and the ones the webhook must refuse."""

from __future__ import annotations

from fractions import Fraction

import pytest

from scm.errors import InputError
from scm.kube.quantity import format_bytes, parse_quantity, whole_quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("64Mi", 64 * 2**20),
        ("512Ki", 512 * 1024),
        ("1G", 10**9),
        ("1.5Ki", 1536),
        ("1e6", 10**6),
        (4096, 4096),
    ],
)
def test_parse_quantity(text: str | int, value: int) -> None:
    assert parse_quantity(text) == value


def test_fractions_are_exact() -> None:
    assert parse_quantity("500m") == Fraction(1, 2)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("0.5", "whole number"),
        ("100m", "whole number"),
        ("-1Mi", "negative"),
        ("1e100", "larger than"),
        ("9Ei", "larger than"),
        ("64MB", "not a quantity"),
        ("", "not a quantity"),
        (True, "not a quantity"),
        ([1], "not a quantity"),
    ],
)
def test_whole_quantity_refuses(text: object, reason: str) -> None:
    with pytest.raises(InputError, match=reason):
        whole_quantity(text)


@pytest.mark.parametrize(
    ("count", "text"),
    [(0, "0"), (1000, "1000"), (1024, "1Ki"), (3 * 2**20, "3Mi"), (2**30 + 1, "1073741825")],
)
def test_format_bytes(count: int, text: str) -> None:
    assert format_bytes(count) == text
    assert parse_quantity(text) == count
