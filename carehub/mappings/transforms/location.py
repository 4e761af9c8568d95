"""PL (person location) parts to a Location name, description and physical type.

A PL names a place from coarse to fine in separate components (point of
care, room, bed, facility, building, floor). The carehub Location is the
finest place named; its name lists the parts ``point of care/room/bed`` so
two beds in one ward stay two Locations, and the facility goes in the
description.
"""

from __future__ import annotations

from typing import Any

from carehub.mappings.transforms import parts_transform

_LEVELS = ((2, "bd", "Bed"), (1, "ro", "Room"), (0, "wa", "Ward"))
_PHYSICAL = "http://terminology.hl7.org/CodeSystem/location-physical-type"


def _at(parts: list[str], index: int) -> str:
    return parts[index].strip() if index < len(parts) else ""


@parts_transform("pl_name")
def pl_name(parts: list[str]) -> str | None:
    named = [_at(parts, i) for i in (0, 1, 2) if _at(parts, i)]
    if named:
        return "/".join(named)
    return _at(parts, 8) or _at(parts, 3) or None


@parts_transform("pl_description")
def pl_description(parts: list[str]) -> str | None:
    labels = ((3, "facility"), (6, "building"), (7, "floor"))
    bits = [f"{label} {_at(parts, i)}" for i, label in labels if _at(parts, i)]
    return ", ".join(bits) or None


@parts_transform("pl_physical_type")
def pl_physical_type(parts: list[str]) -> dict[str, Any] | None:
    for index, code, display in _LEVELS:
        if _at(parts, index):
            return {"coding": [{"system": _PHYSICAL, "code": code, "display": display}]}
    return None


@parts_transform("pl_text")
def pl_text(parts: list[str]) -> str | None:
    """One-line text of a whole PL (CareEvent.location)."""
    named = [_at(parts, i) for i in (0, 1, 2, 3) if _at(parts, i)]
    return "^".join(named) or None
