"""Quantities as Kubernetes writes them, and the ones the webhook must refuse."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


QUANTITY_TEXT = st.builds(
    lambda sign, whole, fraction, tail: f"{sign}{whole}{fraction}{tail}",
    st.sampled_from(["", "+", "-"]),
    st.integers(0, 10**20).map(str),
    st.sampled_from(["", ".", ".5", ".25", ".000001"]),
    st.sampled_from(["", "n", "u", "m", "k", "M", "G", "T", "P", "E"])
    | st.sampled_from(["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"])
    | st.integers(-20, 30).map(lambda e: f"e{e}"),
)


def exact_whole(text: str) -> int | str:
    """The definition whole_quantity must meet, through exact fractions; else the error."""
    try:
        exact = parse_quantity(text)
    except InputError as exc:
        return str(exc)
    if exact.denominator != 1 or exact < 0 or exact > 2**63 - 1:
        return "refused"
    return int(exact)


@settings(max_examples=500, deadline=None)
@given(QUANTITY_TEXT)
def test_whole_quantity_agrees_with_exact_arithmetic(text: str) -> None:
    expected = exact_whole(text)
    try:
        got: int | str = whole_quantity(text)
    except InputError:
        got = "refused"
    assert got == (expected if isinstance(expected, int) else "refused")


def test_only_ascii_digits_are_quantities() -> None:
    with pytest.raises(InputError, match="not a quantity"):
        whole_quantity("\u0663Mi")  # ARABIC-INDIC DIGIT THREE


def test_repeated_and_padded_quantities_give_the_same_answer() -> None:
    """Short strings are parsed once and remembered; long ones (padding a hostile client
    could send) are parsed every time: the answers are the same either way."""
    for _ in range(2):
        assert whole_quantity("64Mi") == 64 * 2**20
        assert whole_quantity(" " * 100 + "64Mi") == 64 * 2**20
        with pytest.raises(InputError):
            whole_quantity("0.5")  # half a byte
