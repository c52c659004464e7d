"""A hub: what running sources lend to other parts, by id, attached and detached by the runtime.

Detaching is by identity: a source instance that stops removes only what *it* lent, never what
the instance that replaced it (a restarted source) has attached meanwhile.
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class Hub(Generic[T]):
    def __init__(self) -> None:
        self._items: dict[str, T] = {}

    def attach(self, item_id: str, item: T) -> None:
        self._items[item_id] = item

    def detach(self, item_id: str, item: T) -> None:
        if self._items.get(item_id) is item:
            del self._items[item_id]

    def get(self, item_id: str) -> T | None:
        return self._items.get(item_id)
