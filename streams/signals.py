"""Care-coordination signals from one patient's event history (pure).

State per patient (kept by the route agent in a Faust table keyed by the
patient key): recent discharges, recent ED visits, and the follow-up tasks the
hub has opened. From it, for each new event:

- ``readmission``: an admission within 30 days after a discharge;
- ``ed-high-utilizer``: 3 or more ED visits (distinct encounters) in 60 days,
  this one included;
- ``open-follow-up``: a follow-up task the hub created is still open. The hub
  does not hear back about completion yet, so a task counts as open until 30
  days after its due date.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from core.records import CareEvent

READMISSION_WINDOW = timedelta(days=30)
ED_WINDOW = timedelta(days=60)
ED_VISITS = 3
TASK_GRACE = timedelta(days=30)
ADMISSIONS = ("admit",)
ED_KINDS = ("admit", "register")


def parse_time(value: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class OpenTask:
    key: str
    code: str
    recipient_id: str
    due: str


@dataclass(frozen=True, slots=True)
class PatientState:
    discharges: tuple[str, ...] = ()
    ed_visits: tuple[tuple[str, str], ...] = ()
    open_tasks: tuple[OpenTask, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "discharges": list(self.discharges),
            "ed_visits": [list(v) for v in self.ed_visits],
            "open_tasks": [[t.key, t.code, t.recipient_id, t.due] for t in self.open_tasks],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> PatientState:
        if not data:
            return cls()
        return cls(
            tuple(data.get("discharges", ())),
            tuple((str(a), str(b)) for a, b in data.get("ed_visits", ())),
            tuple(OpenTask(*t) for t in data.get("open_tasks", ())),
        )


@dataclass(frozen=True, slots=True)
class Signals:
    flags: frozenset[str] = frozenset()
    reasons: tuple[str, ...] = field(default=())


def _is_ed(event: CareEvent) -> bool:
    return event.kind in ED_KINDS and event.encounter_class == "EMER"


def _readmission(state: PatientState, event: CareEvent, at: datetime) -> str | None:
    if event.kind not in ADMISSIONS:
        return None
    for raw in state.discharges:
        discharged = parse_time(raw)
        if discharged is not None and timedelta(0) <= at - discharged <= READMISSION_WINDOW:
            return f"admitted {(at - discharged).days} day(s) after a discharge"
    return None


def _ed_visits(state: PatientState, event: CareEvent, at: datetime) -> set[str]:
    visits = {enc for raw, enc in state.ed_visits if (t := parse_time(raw)) and timedelta(0) <= at - t <= ED_WINDOW}
    if _is_ed(event):
        visits.add(event.encounter_id or event.event_id)
    return visits


def _open(state: PatientState, at: datetime) -> list[OpenTask]:
    return [t for t in state.open_tasks if (due := parse_time(t.due)) is None or at <= due + TASK_GRACE]


def signals(state: PatientState, event: CareEvent) -> Signals:
    """The flags that hold for ``event`` given the patient's history before it."""
    at = parse_time(event.occurred_at)
    if at is None:
        return Signals()
    found: dict[str, str] = {}
    readmit = _readmission(state, event, at)
    if readmit:
        found["readmission"] = readmit
    visits = _ed_visits(state, event, at)
    if len(visits) >= ED_VISITS:
        found["ed-high-utilizer"] = f"{len(visits)} ED visits in 60 days"
    still_open = _open(state, at)
    if still_open:
        found["open-follow-up"] = f"{len(still_open)} open follow-up task(s): {', '.join(t.code for t in still_open)}"
    return Signals(frozenset(found), tuple(f"{k}: {v}" for k, v in sorted(found.items())))


def observe(state: PatientState, event: CareEvent, tasks: list[OpenTask]) -> PatientState:
    """The state after ``event`` (and the tasks routing opened for it); old entries pruned."""
    at = parse_time(event.occurred_at)
    if at is None:
        return state
    discharges = [d for d in state.discharges if (t := parse_time(d)) and at - t <= READMISSION_WINDOW]
    if event.kind == "discharge":
        discharges.append(event.occurred_at)
    ed = [(raw, enc) for raw, enc in state.ed_visits if (t := parse_time(raw)) and at - t <= ED_WINDOW]
    if _is_ed(event) and all(enc != (event.encounter_id or event.event_id) for _, enc in ed):
        ed.append((event.occurred_at, event.encounter_id or event.event_id))
    known = {t.key for t in state.open_tasks}
    open_tasks = [*_open(state, at), *(t for t in tasks if t.key not in known)]
    return PatientState(tuple(discharges), tuple(ed), tuple(open_tasks))
