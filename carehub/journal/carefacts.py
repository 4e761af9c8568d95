"""Care facts: the events and follow-up Tasks the scorecard counts, one row each, written by route.

``care_facts`` holds one row per routed admission, ED registration, outpatient visit, transfer
and discharge: who (patient key, merged keys rewritten to the survivor), which visit, when it
happened and when the hub received it, where (facility), the encounter and patient class, PV1-4
admission type, discharge disposition, age facts, the payer and PCP recipients routing chose, and
the LACE index at a discharge. A cancel (A11, A13, A38) marks the rows it takes back with the
cancelling event (``cancelled_by``), so measures skip them. ``care_fact_tasks`` maps each Task
routing opened to its event, code and service category. Both are keyed by the event or Task id,
so a record routed twice (a redelivery) is stored once. The scorecard (carehub.scorecard) reads
them with delivery_outcomes and tasks.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass

from carehub.core.clock import now_iso
from carehub.journal.db import Database

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS care_facts (
        event_id TEXT PRIMARY KEY, patient_key TEXT NOT NULL, visit_id TEXT NOT NULL, kind TEXT NOT NULL,
        occurred_at TEXT NOT NULL, received_at TEXT NOT NULL, facility TEXT NOT NULL,
        encounter_class TEXT NOT NULL, patient_class TEXT NOT NULL, admission_type TEXT NOT NULL,
        disposition TEXT NOT NULL, birth_date TEXT NOT NULL, payer TEXT NOT NULL, pcp_recipient TEXT NOT NULL,
        lace INTEGER, lace_detail TEXT NOT NULL, cancelled_by TEXT NOT NULL, recorded_at TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS care_facts_by_kind ON care_facts (kind, occurred_at)",
    "CREATE INDEX IF NOT EXISTS care_facts_by_patient ON care_facts (patient_key, occurred_at)",
    """CREATE TABLE IF NOT EXISTS care_fact_tasks (
        task_id TEXT PRIMARY KEY, event_id TEXT NOT NULL, patient_key TEXT NOT NULL, recipient_id TEXT NOT NULL,
        code TEXT NOT NULL, category TEXT NOT NULL, due TEXT NOT NULL, recorded_at TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS care_fact_tasks_by_event ON care_fact_tasks (event_id)",
    "CREATE INDEX IF NOT EXISTS care_fact_tasks_by_patient ON care_fact_tasks (patient_key)",
]
#: Migration 11: a visit's admission (per discharge) and a Task's first change (per Task) are looked up
#: per row; without these the planner scans (care_facts_by_kind, all of task_changes).
INDEXES = [
    "CREATE INDEX IF NOT EXISTS care_facts_by_visit_kind ON care_facts (visit_id, kind, occurred_at)",
    "CREATE INDEX IF NOT EXISTS task_changes_by_task ON task_changes (task_id, id)",
]
#: Migration 12: care_facts_by_visit (visit_id), which migration 7 used to make, is a prefix of
#: care_facts_by_visit_kind and only cost a B-tree write per routed event.
DROPPED = ["DROP INDEX IF EXISTS care_facts_by_visit"]
#: The event kinds kept as facts, and what each cancel takes back (kinds of the same visit).
FACT_KINDS = frozenset({"admit", "register", "discharge", "transfer", "outpatient-visit"})
CANCELS: dict[str, tuple[str, ...]] = {
    "cancel-admit": ("admit", "register", "transfer", "discharge"),
    "cancel-pre-admit": ("admit", "register", "transfer", "discharge"),
    "cancel-discharge": ("discharge",),
    "cancel-transfer": ("transfer",),
}
_COLUMNS = (
    "event_id, patient_key, visit_id, kind, occurred_at, received_at, facility, encounter_class, patient_class,"
    " admission_type, disposition, birth_date, payer, pcp_recipient, lace, lace_detail"
)


@dataclass(frozen=True, slots=True)
class CareFact:
    event_id: str
    patient_key: str
    visit_id: str
    kind: str
    occurred_at: str
    received_at: str
    facility: str
    encounter_class: str
    patient_class: str
    admission_type: str
    disposition: str
    birth_date: str
    payer: str
    pcp_recipient: str
    lace: int | None = None
    lace_detail: str = ""


@dataclass(frozen=True, slots=True)
class FactTask:
    task_id: str
    event_id: str
    patient_key: str
    recipient_id: str
    code: str
    category: str
    due: str


@dataclass(frozen=True, slots=True)
class Cancel:
    kind: str
    visit_id: str
    event_id: str
    occurred_at: str


class CareFactStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, fact: CareFact | None, tasks: list[FactTask], cancel: Cancel | None = None) -> None:
        """One routed event: its fact, the Tasks it opened, and what a cancel takes back.

        A cancel marks the visit's facts of the kinds it cancels that happened no later than the cancel
        (so a redelivered A13 does not take back the discharge that replaced the cancelled one)."""
        stamp = now_iso()
        with self.db.transaction():
            if fact is not None:
                self.db.execute(
                    f"INSERT INTO care_facts ({_COLUMNS}, cancelled_by, recorded_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', ?) ON CONFLICT (event_id) DO NOTHING",
                    (*astuple(fact), stamp),
                )
            for task in tasks:
                self.db.execute(
                    "INSERT INTO care_fact_tasks (task_id, event_id, patient_key, recipient_id, code, category, due,"
                    " recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (task_id) DO NOTHING",
                    (*astuple(task), stamp),
                )
            if cancel is not None and cancel.visit_id and (kinds := CANCELS.get(cancel.kind)):
                marks = ", ".join("?" for _ in kinds)
                self.db.execute(
                    f"UPDATE care_facts SET cancelled_by = ? WHERE visit_id = ? AND kind IN ({marks})"
                    " AND cancelled_by = '' AND occurred_at <= ?",
                    (cancel.event_id, cancel.visit_id, *kinds, cancel.occurred_at),
                )

    def reassign(self, retired: list[str], survivor: str) -> None:
        """A merge: the retired patients' facts and Tasks count for the survivor."""
        with self.db.transaction():
            for old in retired:
                self.db.execute("UPDATE care_facts SET patient_key = ? WHERE patient_key = ?", (survivor, old))
                self.db.execute("UPDATE care_fact_tasks SET patient_key = ? WHERE patient_key = ?", (survivor, old))

    def get(self, event_id: str) -> CareFact | None:
        rows = self.db.query(f"SELECT {_COLUMNS} FROM care_facts WHERE event_id = ?", (event_id,))
        return CareFact(*rows[0]) if rows else None

    def cancelled_by(self, event_id: str) -> str:
        rows = self.db.query("SELECT cancelled_by FROM care_facts WHERE event_id = ?", (event_id,))
        return str(rows[0][0]) if rows else ""
