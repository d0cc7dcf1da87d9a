"""Record: immutable typed records (the host model is made of them)."""

from __future__ import annotations

import copy
import pickle
from typing import ClassVar

import pytest

from scm.platform.report import EpcSection
from scm.record import Record


class Point(Record):
    """A record with a required field, defaults, a class constant and a property."""

    x: int
    y: int = 0
    label: str | None = None
    UNIT: ClassVar[str] = "mm"

    @property
    def norm1(self) -> int:
        return abs(self.x) + abs(self.y)


def test_fields_bind_like_a_dataclass() -> None:
    assert Point(1, 2).as_dict() == {"x": 1, "y": 2, "label": None}
    assert Point(1, label="a") == Point(x=1, y=0, label="a")
    assert Point(3, -4).norm1 == 7
    assert list(Point(1).as_dict()) == ["x", "y", "label"]  # declaration order, no ClassVar
    assert Point.UNIT == "mm"


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((), {}, "missing 'x'"),
        ((1, 2, "a", 4), {}, "takes 3 arguments"),
        ((1,), {"x": 2}, "unexpected or repeated 'x'"),
        ((1,), {"z": 2}, "unexpected or repeated 'z'"),
    ],
)
def test_wrong_arguments_are_refused(args: tuple, kwargs: dict, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        Point(*args, **kwargs)


def test_a_record_cannot_change() -> None:
    point = Point(1)
    with pytest.raises(AttributeError, match="immutable"):
        point.x = 2  # type: ignore[misc]
    with pytest.raises(AttributeError, match="immutable"):
        del point.x  # type: ignore[misc]
    assert point.x == 1


def test_equality_and_hash_follow_type_and_fields() -> None:
    assert Point(1, 2) == Point(1, 2)
    assert hash(Point(1, 2)) == hash(Point(1, 2))
    assert Point(1, 2) != Point(2, 1)
    assert Point(1) != EpcSection(1)  # another record type with the same first field
    assert Point(1) != (1, 0, None)
    assert len({Point(1), Point(1), Point(2)}) == 2


def test_repr_names_every_field() -> None:
    assert repr(Point(1, label="a")) == "Point(x=1, y=0, label='a')"


def test_copies_and_pickles_round_trip() -> None:
    point = Point(1, 2, "a")
    assert copy.copy(point) == point
    assert copy.deepcopy(point) == point
    assert pickle.loads(pickle.dumps(point)) == point


def test_a_field_without_default_after_one_with_is_refused() -> None:
    with pytest.raises(TypeError, match="follows a default"):

        class Broken(Record):
            a: int = 0
            b: int


def test_a_subclass_adds_fields_after_its_base() -> None:
    class Labelled(Point):
        colour: str = "red"

    assert Labelled(1, colour="blue").as_dict() == {"x": 1, "y": 0, "label": None, "colour": "blue"}
