"""Care-coordination signals from one patient's event history (pure).

State per patient (kept by the route stage in a streams.store table keyed by the
patient key): recent discharges, recent ED visits, and the follow-up tasks the
hub has opened. From it, for each new event:

- ``readmission``: an admission within 30 days after a discharge;
- ``ed-high-utilizer``: 3 or more ED visits (distinct encounters) in 60 days,
  this one included;
- ``open-follow-up``: a follow-up task the hub created is still open. The hub
  does not hear back about completion yet, so a task counts as open until 30
  days after its due date;
- ``key-field-corrected``: an A08 changed a key field (the encounter class) of a visit
  recipients were told about.

Per visit the state also keeps what was sent for it (delivery id, recipient, action),
so a correction (streams.corrections) reaches every recipient that got the original, and what
the LACE index at discharge needs (streams.risk): when the visit was admitted, its admission
type (PV1-4) and the ICD-10 codes seen on it; ED visits are kept for 6 months.
A cancelled discharge or admission takes its discharge and its tasks out of the state,
so readmission and open follow-up are recomputed as if it had not happened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from carehub.core.records import CareEvent
from carehub.streams.routing.match import diagnosis_codes

READMISSION_WINDOW = timedelta(days=30)
ED_WINDOW = timedelta(days=60)
#: The LACE index counts the ED visits of the 6 months before an admission; they are remembered a year
#: (events between an admission and its discharge must not prune what the discharge's LACE counts).
ED_HISTORY = timedelta(days=183)
ED_KEEP = timedelta(days=366)
ED_VISITS = 3
TASK_GRACE = timedelta(days=30)
#: Visits remembered per patient (for corrections); the oldest are dropped first.
MAX_VISITS = 20
#: ICD-10 codes remembered per visit.
MAX_CODES = 40
#: Cancels that take a visit's discharge (and its tasks) back.
UNDO_DISCHARGE = frozenset({"cancel-discharge", "cancel-admit", "cancel-pre-admit"})
UNDO_ADMIT = frozenset({"cancel-admit", "cancel-pre-admit"})
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
class Sent:
    """One delivery planned for a visit: what a correction of the visit must follow."""

    delivery_id: str
    recipient_id: str
    action: str


@dataclass(frozen=True, slots=True)
class Visit:
    visit_id: str
    encounter_class: str = ""
    discharged_at: str = ""
    sent: tuple[Sent, ...] = ()
    admitted_at: str = ""
    admission_type: str = ""
    diagnoses: tuple[str, ...] = ()
    #: An A11 (or A38) cancelled the admission: the visit did not happen.
    cancelled: bool = False


@dataclass(frozen=True, slots=True)
class PatientState:
    discharges: tuple[str, ...] = ()
    ed_visits: tuple[tuple[str, str], ...] = ()
    open_tasks: tuple[OpenTask, ...] = ()
    visits: tuple[Visit, ...] = ()

    def visit(self, visit_id: str | None) -> Visit | None:
        return next((v for v in self.visits if visit_id and v.visit_id == visit_id), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "discharges": list(self.discharges),
            "ed_visits": [list(v) for v in self.ed_visits],
            "open_tasks": [[t.key, t.code, t.recipient_id, t.due] for t in self.open_tasks],
            "visits": [
                [
                    v.visit_id,
                    v.encounter_class,
                    v.discharged_at,
                    [[s.delivery_id, s.recipient_id, s.action] for s in v.sent],
                    v.admitted_at,
                    v.admission_type,
                    list(v.diagnoses),
                    v.cancelled,
                ]
                for v in self.visits
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> PatientState:
        if not data:
            return cls()
        return cls(
            tuple(data.get("discharges", ())),
            tuple((str(a), str(b)) for a, b in data.get("ed_visits", ())),
            tuple(OpenTask(*t) for t in data.get("open_tasks", ())),
            tuple(_visit(v) for v in data.get("visits", ())),
        )


def _visit(v: list[Any]) -> Visit:
    """A visit as stored; entries written before the LACE fields existed have four items."""
    extra: list[Any] = list(v[4:8]) if len(v) >= 8 else ["", "", [], False]
    return Visit(v[0], v[1], v[2], tuple(Sent(*x) for x in v[3]), str(extra[0]), str(extra[1]),
                 tuple(str(c) for c in extra[2]), bool(extra[3]))  # fmt: skip


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
    visit = state.visit(event.encounter_id)
    if (
        event.kind == "update"
        and visit is not None
        and visit.sent
        and visit.encounter_class
        and event.encounter_class
        and visit.encounter_class != event.encounter_class
    ):
        found["key-field-corrected"] = f"encounter class {visit.encounter_class} corrected to {event.encounter_class}"
    still_open = _open(state, at)
    if still_open:
        found["open-follow-up"] = f"{len(still_open)} open follow-up task(s): {', '.join(t.code for t in still_open)}"
    return Signals(frozenset(found), tuple(f"{k}: {v}" for k, v in sorted(found.items())))


def _visits(state: PatientState, event: CareEvent, sent: list[Sent]) -> tuple[Visit, ...]:
    """The visit records after ``event``: what was sent for the visit, its class and discharge time."""
    visit_id = event.encounter_id
    if not visit_id:
        return state.visits
    old = state.visit(visit_id) or Visit(visit_id)
    known = {s.delivery_id for s in old.sent}
    discharged = old.discharged_at
    if event.kind == "discharge":
        discharged = event.occurred_at
    elif event.kind in UNDO_DISCHARGE:
        discharged = ""
    corrected = event.kind.startswith("cancel-")
    admitted = old.admitted_at
    if event.kind in ADMISSIONS or (event.kind == "register" and event.encounter_class == "EMER"):
        admitted = admitted or event.occurred_at
    codes = old.diagnoses if corrected else tuple(dict.fromkeys((*old.diagnoses, *diagnosis_codes(event))))
    visit = Visit(
        visit_id,
        old.encounter_class if corrected or not event.encounter_class else event.encounter_class,
        discharged,
        (*old.sent, *(s for s in sent if s.delivery_id not in known)),
        admitted,
        old.admission_type if corrected else str(event.attributes.get("admission_type") or old.admission_type),
        codes[-MAX_CODES:],
        old.cancelled or event.kind in UNDO_ADMIT,
    )
    others = [v for v in state.visits if v.visit_id != visit_id]
    return (*others, visit)[-MAX_VISITS:]


def observe(
    state: PatientState, event: CareEvent, tasks: list[OpenTask], sent: list[Sent] | None = None
) -> PatientState:
    """The state after ``event`` (and the tasks routing opened for it, what it sent); old entries pruned.

    A cancelled discharge or admission removes its discharge time and closes the visit's open tasks.
    """
    at = parse_time(event.occurred_at)
    if at is None:
        return state
    visit = state.visit(event.encounter_id)
    undone: set[str] = set()
    dropped_discharge = ""
    if visit is not None and event.kind in UNDO_DISCHARGE:
        undone = {s.delivery_id for s in visit.sent if s.action == "task"}
        dropped_discharge = visit.discharged_at
    discharges = [
        d for d in state.discharges if (t := parse_time(d)) and at - t <= READMISSION_WINDOW and d != dropped_discharge
    ]
    if event.kind == "discharge":
        discharges.append(event.occurred_at)
    ed = [(raw, enc) for raw, enc in state.ed_visits if (t := parse_time(raw)) and at - t <= ED_KEEP]
    if event.kind in UNDO_ADMIT:
        ed = [(raw, enc) for raw, enc in ed if enc != event.encounter_id]
    if _is_ed(event) and all(enc != (event.encounter_id or event.event_id) for _, enc in ed):
        ed.append((event.occurred_at, event.encounter_id or event.event_id))
    known = {t.key for t in state.open_tasks}
    open_tasks = [t for t in [*_open(state, at), *(t for t in tasks if t.key not in known)] if t.key not in undone]
    return PatientState(tuple(discharges), tuple(ed), tuple(open_tasks), _visits(state, event, sent or []))


def merged(survivor: PatientState, retired: list[PatientState]) -> PatientState:
    """The survivor's state after a merge: the retired records' history and open tasks follow it."""
    states = [survivor, *retired]
    discharges = sorted({d for s in states for d in s.discharges})
    ed = list({enc: (raw, enc) for s in states for raw, enc in s.ed_visits}.values())
    tasks = list({t.key: t for s in states for t in s.open_tasks}.values())
    visits = list({v.visit_id: v for s in reversed(states) for v in s.visits}.values())[-MAX_VISITS:]
    return PatientState(tuple(discharges), tuple(ed), tuple(tasks), tuple(visits))
