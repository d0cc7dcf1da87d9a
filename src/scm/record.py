"""Record: an immutable, typed value class that costs next to nothing to define.

A frozen dataclass generates and compiles code when its class is defined (about 1 ms
each here), a NamedTuple a little less (about 0.4 ms); `scm inspect` defines a dozen such
records, which came to a tenth of its start-up. A Record subclass declares its fields as
annotations with optional defaults, exactly as a dataclass would, and mypy checks its
construction through ``dataclass_transform``; nothing is generated at definition time.

Instances are immutable, compare equal (and hash) by type and fields, print like a
dataclass, and :meth:`Record.as_dict` gives the fields in order.
"""

from __future__ import annotations

from typing import Any, ClassVar, dataclass_transform


@dataclass_transform(frozen_default=True)
class Record:
    """Base of an immutable record; subclasses declare fields as class annotations."""

    _field_names: ClassVar[tuple[str, ...]] = ()
    _defaults: ClassVar[dict[str, object]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = [
            name
            for name, hint in cls.__annotations__.items()  # its own only (Python 3.10+)
            if "ClassVar" not in str(hint)
        ]
        fields = (*cls._field_names, *(name for name in own if name not in cls._field_names))
        defaults = {**cls._defaults}
        defaults.update({name: cls.__dict__[name] for name in own if name in cls.__dict__})
        seen_default = False
        for name in fields:  # as for a dataclass: no field without default after one with
            if name in defaults:
                seen_default = True
            elif seen_default:
                raise TypeError(f"{cls.__name__}.{name} has no default but follows a default")
        cls._field_names, cls._defaults = fields, defaults

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        cls = type(self)
        names = cls._field_names
        if len(args) > len(names):
            raise TypeError(f"{cls.__name__}() takes {len(names)} arguments, {len(args)} given")
        values = dict(zip(names, args, strict=False))
        for name, value in kwargs.items():
            if name not in names or name in values:
                raise TypeError(f"{cls.__name__}() got an unexpected or repeated {name!r}")
            values[name] = value
        for name in names[len(args) :]:
            if name not in values:
                if name not in cls._defaults:
                    raise TypeError(f"{cls.__name__}() is missing {name!r}")
                values[name] = cls._defaults[name]
        # Field order kept, so that as_dict() and repr follow the declaration.
        self.__dict__.update((name, values[name]) for name in names)

    def as_dict(self) -> dict[str, Any]:
        """The fields and their values, in declaration order (not recursive)."""
        return dict(self.__dict__)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot delete {name!r}")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash((type(self), *self.__dict__.values()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self.__dict__.items())
        return f"{type(self).__name__}({fields})"
