"""Every secret or identifier the tests hand to the service, so the log scan can look for each of them."""

from __future__ import annotations

SEEN: set[str] = set()


def remember(value: str) -> str:
    SEEN.add(value)
    return value
