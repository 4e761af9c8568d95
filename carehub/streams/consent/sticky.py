"""Sticky sensitivity: what carehub remembers of a patient's Part 2 visits (pure).

A message that says nothing about SUD can still belong to a Part 2 record:
an A08 or A03 of a program visit whose PV1-3 is elsewhere, an A11/A13, an
A40 that merges the program's MRN into a hospital MRN, an ED visit while a
program episode is open. Detection on the message alone misses them; this
status, kept per patient (with its visits) in the ``part2-status`` table,
does not. ``prior`` says what an event inherits; ``observe`` folds the
labelled event back in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from carehub.core.records import CareEvent

#: Kinds that end a visit (an open episode is a program visit not ended).
_ENDS = frozenset({"discharge", "cancel-admit"})
_REOPENS = frozenset({"cancel-discharge"})
#: Visits remembered per patient (the oldest are dropped first).
MAX_VISITS = 64
EMERGENCY_CLASSES = frozenset({"EMER"})


@dataclass(frozen=True, slots=True)
class Visit:
    program_id: str
    basis: str
    open: bool


@dataclass(frozen=True, slots=True)
class Part2Status:
    """A patient's Part 2 history: the program(s) it came from and its program visits."""

    program_id: str = ""
    basis: str = ""
    visits: dict[str, Visit] = field(default_factory=dict)

    @property
    def open_episode(self) -> Visit | None:
        return next((v for v in reversed(self.visits.values()) if v.open and v.basis != "episode"), None)

    def to_dict(self) -> dict[str, Any]:
        visits = {k: {"program_id": v.program_id, "basis": v.basis, "open": v.open} for k, v in self.visits.items()}
        return {"program_id": self.program_id, "basis": self.basis, "visits": visits}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Part2Status:
        if not data:
            return cls()
        visits = {k: Visit(str(v["program_id"]), str(v["basis"]), bool(v["open"])) for k, v in data["visits"].items()}
        return cls(str(data.get("program_id", "")), str(data.get("basis", "")), visits)


@dataclass(frozen=True, slots=True)
class Prior:
    """What an event inherits: the program, the basis (for redaction) and why."""

    program_id: str
    basis: str
    reason: str


def prior(event: CareEvent, own: Part2Status, merged: Iterable[Part2Status], ed_of_open_episode: bool) -> Prior | None:
    """The Part 2 status an event inherits from earlier events, if any."""
    visit = own.visits.get(event.encounter_id or "")
    if visit is not None:
        return Prior(visit.program_id, visit.basis, f"later event of a visit to Part 2 program {visit.program_id}")
    for other in merged:
        if other.program_id:
            why = f"merges a patient record of Part 2 program {other.program_id}"
            return Prior(other.program_id, other.basis, why)
    episode = own.open_episode
    emergency = event.encounter_class in EMERGENCY_CLASSES or event.attributes.get("patient_class") == "E"
    if ed_of_open_episode and emergency and episode is not None:
        why = f"emergency visit during an open episode of Part 2 program {episode.program_id} (policy)"
        return Prior(episode.program_id, "episode", why)
    return None


def observe(
    own: Part2Status, event: CareEvent, program_id: str, basis: str, merged: Iterable[Part2Status]
) -> Part2Status:
    """The status after a labelled event (``program_id`` empty: the event is not Part 2)."""
    visits = dict(own.visits)
    patient_program, patient_basis = own.program_id, own.basis
    for other in merged:  # a merge carries the retired record's history into the survivor
        visits.update(other.visits)
        if other.program_id and not patient_program:
            patient_program, patient_basis = other.program_id, other.basis
    key = event.encounter_id or ""
    was = visits.pop(key, None) if key else None
    if program_id or was is not None:
        program, why = (program_id, basis) if program_id else (was.program_id, was.basis)  # type: ignore[union-attr]
        ended = event.kind in _ENDS or (was is not None and not was.open and event.kind not in _REOPENS)
        visits[key] = Visit(program, why, why != "episode" and not ended)
    visits.pop("", None)
    while len(visits) > MAX_VISITS:
        visits.pop(next(iter(visits)))
    if program_id and not patient_program:
        patient_program, patient_basis = program_id, basis
    return Part2Status(patient_program, patient_basis, visits)
