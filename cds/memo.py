"""What is worked out once from policy data that cannot be hashed (a policy version, a tuple of criteria holding
mappings): remembered by the identity of that data, never by anything a request or a patient sent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class IdentityMemo:
    """Values keyed by an object's identity and a hashable detail. The object is kept with its value, so the id of
    one that was freed, reused by another, never finds the old value; cleared when full (policy data is a few hundred
    objects, so a full memo means something else is being keyed, and it must not grow)."""

    def __init__(self, size: int = 1024) -> None:
        self._entries: dict[tuple[int, Any], tuple[object, Any]] = {}
        self._size = size

    def get(self, anchor: object, detail: Any, make: Callable[..., Any], *args: Any) -> Any:
        """The value for (``anchor``, ``detail``), made by ``make(*args)`` the first time (no closure per call)."""
        key = (id(anchor), detail)
        found = self._entries.get(key)
        if found is not None and found[0] is anchor:
            return found[1]
        value = make(*args)
        if len(self._entries) >= self._size:
            self._entries.clear()
        self._entries[key] = (anchor, value)
        return value
