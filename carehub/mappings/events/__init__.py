"""ADT trigger events: kind, encounter status and structure, from triggers.yaml."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from carehub.mappings.loader import load_mapping_file

TRIGGERS_FILE = Path(__file__).resolve().parent / "triggers.yaml"


@dataclass(frozen=True, slots=True)
class Trigger:
    code: str
    kind: str
    status: str
    structure: str
    encounter: bool = True


UNKNOWN = Trigger("", "other", "unknown", "ADT_A01")


@cache
def triggers() -> dict[str, Trigger]:
    data = load_mapping_file(TRIGGERS_FILE, "triggers")
    return {
        code: Trigger(code, spec["kind"], spec["status"], spec["structure"], bool(spec.get("encounter", True)))
        for code, spec in data["triggers"].items()
    }


def trigger(code: str) -> Trigger:
    """The trigger's entry; unknown triggers are kind ``other`` with the A01 structure."""
    found = triggers().get(code)
    return found if found is not None else Trigger(code, UNKNOWN.kind, UNKNOWN.status, UNKNOWN.structure)


def kinds() -> list[str]:
    return sorted({t.kind for t in triggers().values()} | {UNKNOWN.kind})
