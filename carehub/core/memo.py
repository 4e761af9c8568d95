"""Results of pure functions of JSON documents, remembered by the document's identity.

A stage walks the same resources of an event several times: the route stage labels an event (Part 2
detection) and the gatekeeper labels it again once the LACE index is added; every notification and
packet of the event collects the references of the same resources. The documents are never changed
in place (labels, redaction and enrichment build new ones), so a result found for one object holds
for as long as that object lives. Each entry holds its object (and the context objects the result
depends on), so an id is never reused while it is remembered; when full, the memo starts again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")


class IdentityMemo(Generic[V]):
    """``value(obj, compute, *context)``: ``compute()`` once per live ``obj`` and the same ``context`` objects."""

    def __init__(self, limit: int = 4_096) -> None:
        self._limit = limit
        self._held: dict[int, tuple[object, tuple[object, ...], V]] = {}

    def value(self, obj: object, compute: Callable[[], V], *context: object) -> V:
        held = self._held.get(id(obj))
        if held is not None and held[0] is obj and _same(held[1], context):
            return held[2]
        if len(self._held) >= self._limit:
            self._held.clear()
        found = compute()
        self._held[id(obj)] = (obj, context, found)
        return found

    def __len__(self) -> int:
        return len(self._held)


def _same(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))
