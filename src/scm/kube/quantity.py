"""Kubernetes resource quantities (``"64Mi"``, ``"1e6"``, ``"500m"``) as exact numbers."""

from __future__ import annotations

import functools
import re
from fractions import Fraction

from scm.errors import InputError

# The largest value a Kubernetes quantity holds exactly (an int64).
MAX_QUANTITY = 2**63 - 1

_BINARY = (("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10))
_SUFFIXES: dict[str, Fraction] = {
    "": Fraction(1),
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 10**3),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    **{suffix: Fraction(size) for suffix, size in _BINARY},
}
_QUANTITY = re.compile(
    r"(?P<sign>[+-]?)(?P<number>\d+(?:\.\d*)?|\.\d+)"
    r"(?:(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])|[eE](?P<exponent>[+-]?\d{1,3}))?",
    re.ASCII,  # Kubernetes takes ASCII digits only
)
# The suffixes that keep a whole number whole: the fast path of whole_quantity.
_WHOLE_SCALES = {suffix: int(size) for suffix, size in _SUFFIXES.items() if size >= 1}


def parse_quantity(value: object) -> Fraction:
    """The exact value of a quantity string (or a JSON number); InputError if it is not one."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InputError(f"{value!r} is not a quantity")
    if isinstance(value, int):
        return Fraction(value)
    match = _QUANTITY.fullmatch(value.strip())
    if match is None:
        raise InputError(f"{value!r} is not a quantity (examples: 64Mi, 512Ki, 1G)")
    number = Fraction(match["number"])
    if match["exponent"] is not None:
        number *= Fraction(10) ** int(match["exponent"])
    else:
        number *= _SUFFIXES[match["suffix"] or ""]
    return -number if match["sign"] == "-" else number


def whole_quantity(value: object) -> int:
    """A quantity that must be a whole, non-negative number that fits Kubernetes' int64."""
    if isinstance(value, str) and len(value) <= _CACHED_LENGTH:
        return _cached_whole_quantity(value)
    return _whole_quantity(value)


# Pods repeat a handful of quantity strings ("64Mi"): each is parsed once. Only short ones
# are kept (a valid quantity has at most 19 digits), so hostile input cannot fill memory;
# refusals raise and are never cached.
_CACHED_LENGTH = 32


@functools.lru_cache(maxsize=512)
def _cached_whole_quantity(value: str) -> int:
    return _whole_quantity(value)


def _whole_quantity(value: object) -> int:
    if isinstance(value, str):
        # Whole numbers with a whole scale ("64Mi", "1G", "1e6") in integer arithmetic:
        # Fraction cost more than the rest of an admission review.
        match = _QUANTITY.fullmatch(value.strip())
        if match is not None and match["sign"] != "-" and "." not in match["number"]:
            exponent = match["exponent"]
            if exponent is None:
                scale = _WHOLE_SCALES.get(match["suffix"] or "")
            else:
                scale = 10 ** int(exponent) if int(exponent) >= 0 else None
            if scale is not None:
                return _in_range(int(match["number"]) * scale, value)
    exact = parse_quantity(value)
    if exact.denominator != 1:
        raise InputError(f"{value!r} is not a whole number of bytes")
    if exact < 0:
        raise InputError(f"{value!r} is negative")
    return _in_range(int(exact), value)


def _in_range(count: int, value: object) -> int:
    if count > MAX_QUANTITY:
        raise InputError(f"{value!r} is larger than any quantity Kubernetes can hold")
    return count


def format_bytes(count: int) -> str:
    """A byte count as Kubernetes prints it: the largest exact binary suffix, else plain."""
    for suffix, size in _BINARY:
        if count and count % size == 0:
            return f"{count // size}{suffix}"
    return str(count)
