"""Named transforms that mapping files refer to (``transform: ts_datetime``).

Mapping files hold no code: where a value needs more than a copy or a code
table lookup, the file names one of these functions. Two kinds exist, so the
engine can hand each the input it needs without guessing:

* ``value`` transforms take one unescaped string (a component or sub-component);
* ``parts`` transforms take the unescaped parts of a composite (the components
  of a field, or the sub-components of a component), 0-based.

Both return ``None`` for "nothing to set". Registration happens on import of
the submodules listed at the bottom; ``get`` raises KeyError for unknown names
so the mapping loader can report the file and line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

Kind = Literal["value", "parts"]
ValueFn = Callable[[str], Any]
PartsFn = Callable[[list[str]], Any]
V = TypeVar("V", bound=ValueFn)
P = TypeVar("P", bound=PartsFn)


@dataclass(frozen=True, slots=True)
class Transform:
    name: str
    kind: Kind
    fn: Callable[[Any], Any]


_REGISTRY: dict[str, Transform] = {}


def value_transform(name: str) -> Callable[[V], V]:
    """Register ``fn(str) -> value | None`` under ``name``."""

    def register(fn: V) -> V:
        _add(Transform(name, "value", fn))
        return fn

    return register


def parts_transform(name: str) -> Callable[[P], P]:
    """Register ``fn(list[str]) -> value | None`` under ``name``."""

    def register(fn: P) -> P:
        _add(Transform(name, "parts", fn))
        return fn

    return register


def _add(transform: Transform) -> None:
    if transform.name in _REGISTRY:
        raise ValueError(f"transform {transform.name!r} registered twice")
    _REGISTRY[transform.name] = transform


def get(name: str) -> Transform:
    return _REGISTRY[name]


def names() -> list[str]:
    return sorted(_REGISTRY)


from carehub.mappings.transforms import coded, contact, datetimes, identifiers, location, text  # noqa: E402,F401
