"""A bounded least-recently-used map whose keys the caller chooses.

``functools.lru_cache`` keeps every argument in its key; for a PCK chain (about 4 KB of PEM)
that would be most of a platform's entry. Keying by SHA-256 keeps 10,000 platforms small.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class DigestCache(Generic[V]):
    """At most ``maxsize`` values; the least recently used one goes first."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[Hashable, V] = OrderedDict()

    def get(self, key: Hashable) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: Hashable, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.maxsize:
            self._items.popitem(last=False)

    def cache_clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
