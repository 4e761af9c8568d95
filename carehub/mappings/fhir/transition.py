"""Encounter status transitions -> ADT event kinds, with the reason (pure).

planned/arrived/triaged (or never seen) -> in-progress = admit (A01);
anything not finished -> finished = discharge (A03);
in-progress -> in-progress with another location or class = transfer (A02).
Everything else produces no event, and says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_BEFORE_START = frozenset({"planned", "arrived", "triaged"})
TRIGGERS = {"admit": "A01", "discharge": "A03", "transfer": "A02"}


@dataclass(frozen=True, slots=True)
class EncounterSnapshot:
    """What was last seen of one source Encounter: enough to recognise a transition."""

    status: str
    location: str = ""
    class_code: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"status": self.status, "location": self.location, "class_code": self.class_code}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncounterSnapshot:
        return cls(str(data.get("status", "")), str(data.get("location", "")), str(data.get("class_code", "")))


@dataclass(frozen=True, slots=True)
class Transition:
    kind: str | None
    reason: str

    @property
    def trigger(self) -> str:
        return TRIGGERS.get(self.kind or "", "")


def _active_location(encounter: dict[str, Any]) -> str:
    for item in encounter.get("location") or []:
        if isinstance(item, dict) and item.get("status", "active") in ("active", "planned"):
            return str((item.get("location") or {}).get("reference", ""))
    return ""


def snapshot_of(encounter: dict[str, Any]) -> EncounterSnapshot:
    klass = encounter.get("class")
    class_code = str(klass.get("code", "")) if isinstance(klass, dict) else ""
    return EncounterSnapshot(str(encounter.get("status", "")), _active_location(encounter), class_code)


def transition(previous: EncounterSnapshot | None, current: EncounterSnapshot) -> Transition:
    """The event kind for going from ``previous`` (None = never seen) to ``current``."""
    before = previous.status if previous is not None else "(unseen)"
    if current.status == "finished":
        if previous is not None and previous.status == "finished":
            return Transition(None, "already finished")
        return Transition("discharge", f"{before} -> finished")
    if current.status != "in-progress":
        return Transition(None, f"status {current.status or '(none)'} is not a start or an end")
    if previous is None or previous.status in _BEFORE_START:
        return Transition("admit", f"{before} -> in-progress")
    if previous.status != "in-progress":
        return Transition(None, f"{before} -> in-progress is not an admission")
    if previous.location != current.location:
        return Transition("transfer", "location changed while in progress")
    if previous.class_code != current.class_code:
        return Transition("transfer", f"class changed {previous.class_code} -> {current.class_code}")
    return Transition(None, "in progress, no location or class change")
