"""Referral and transition-of-care Tasks: current state, status history, turnaround.

Status rules follow the Gravity SDOH referral pattern (standards.md §3): the
performer (CBO, PCP) moves a Task to accepted, rejected, in-progress,
on-hold, failed or completed; either side may cancel; a finished Task does
not change again. ``check_transition`` is the pure rule, with its reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from carehub.core.clock import iso, now_iso
from carehub.journal.db import Database

TERMINAL = frozenset({"completed", "rejected", "failed", "cancelled", "entered-in-error"})
PERFORMER_STATUSES = frozenset({"accepted", "rejected", "in-progress", "on-hold", "failed", "completed", "cancelled"})
#: TaskStatus minus ready/received (not used by the Gravity referral profile).
ALL_STATUSES = PERFORMER_STATUSES | {"draft", "requested", "entered-in-error"}

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS tasks (
        id TEXT PRIMARY KEY, recipient_id TEXT NOT NULL, owner TEXT NOT NULL, requester TEXT NOT NULL,
        status TEXT NOT NULL, authored_on TEXT NOT NULL, due TEXT, last_modified TEXT NOT NULL,
        completed_at TEXT, turnaround_s REAL, overdue_at TEXT, version INTEGER NOT NULL, resource TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS tasks_by_owner ON tasks (owner, status)",
    """CREATE TABLE IF NOT EXISTS task_changes (
        id {serial}, task_id TEXT NOT NULL, from_status TEXT, to_status TEXT NOT NULL, at TEXT NOT NULL,
        source TEXT NOT NULL)""",
]


#: Migration 4 (carehub/journal/migrations.py): Tasks indexed by the hub's patient key.
PATIENT_COLUMN = (("patient_key", "TEXT NOT NULL DEFAULT ''"),)
PATIENT_INDEX = ["CREATE INDEX IF NOT EXISTS tasks_by_patient ON tasks (patient_key, status)"]
#: The local businessStatus code system (streams.referrals); ``overdue`` is set when a Task passes its due time.
BUSINESS_STATUS = "urn:carehub:task-business-status"
#: The identifier system of the hub's patient identity: a Task's ``for`` is {system, value: patient key}.
PATIENT_SYSTEM = "urn:carehub:patient"


def patient_reference(patient_key: str) -> dict[str, Any]:
    """An identifier-based Reference to the hub's Patient identity."""
    return {"identifier": {"system": PATIENT_SYSTEM, "value": patient_key}}


def utc_iso(value: str) -> str:
    """A FHIR date or dateTime as a sortable UTC string (dates read as midnight UTC)."""
    text = value.strip()
    if len(text) == 10:
        moment = datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
    else:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return iso(moment)


def seconds_between(start: str, end: str) -> float:
    a = datetime.fromisoformat(utc_iso(start).replace("Z", "+00:00"))
    b = datetime.fromisoformat(utc_iso(end).replace("Z", "+00:00"))
    return (b - a).total_seconds()


def check_transition(current: str, wanted: str) -> str | None:
    """None when a performer may move a Task from ``current`` to ``wanted``; else why not."""
    if wanted not in ALL_STATUSES:
        return f"status {wanted!r} is not a Task status this hub accepts"
    if wanted not in PERFORMER_STATUSES:
        return f"status {wanted!r} is set by the requester, not the performer"
    if current in TERMINAL:
        return f"the Task is already {current}; a finished Task does not change"
    return None


def _ref(value: Any) -> str:
    return (
        str(value.get("reference") or value.get("identifier", {}).get("value") or "") if isinstance(value, dict) else ""
    )


@dataclass(frozen=True, slots=True)
class TaskChange:
    task_id: str
    from_status: str | None
    to_status: str
    at: str
    turnaround_s: float | None
    resource: dict[str, Any]


class TaskStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def put(self, task: dict[str, Any], recipient_id: str, source: str = "hub", patient_key: str = "") -> bool:
        """Store a new Task as sent to ``recipient_id`` for ``patient_key``; False when it is already known."""
        due = task.get("restriction", {}).get("period", {}).get("end")
        authored = task.get("authoredOn") or now_iso()
        stamp = now_iso()
        resource = {**task, "meta": {**task.get("meta", {}), "versionId": "1", "lastUpdated": stamp}}
        with self.db.transaction():
            added = self.db.execute(
                "INSERT INTO tasks (id, recipient_id, owner, requester, status, authored_on, due, last_modified,"
                " version, resource, patient_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?) ON CONFLICT (id) DO NOTHING",
                (
                    task["id"],
                    recipient_id,
                    _ref(task.get("owner")),
                    _ref(task.get("requester")),
                    task.get("status", "requested"),
                    utc_iso(authored),
                    utc_iso(due) if due else None,
                    stamp,
                    json.dumps(resource),
                    patient_key,
                ),
            )
            if added:
                self._change(task["id"], None, task.get("status", "requested"), stamp, source)
        return bool(added)

    def get(self, task_id: str) -> dict[str, Any] | None:
        rows = self.db.query("SELECT resource FROM tasks WHERE id = ?", (task_id,))
        return dict(json.loads(rows[0][0])) if rows else None

    def recipient_of(self, task_id: str) -> str | None:
        """The directory recipient the Task was sent to (who may read and update it)."""
        rows = self.db.query("SELECT recipient_id FROM tasks WHERE id = ?", (task_id,))
        return str(rows[0][0]) if rows else None

    def patient_of(self, task_id: str) -> str:
        """The hub's patient key of a Task ('' for one stored before tasks were indexed by patient)."""
        rows = self.db.query("SELECT patient_key FROM tasks WHERE id = ?", (task_id,))
        return str(rows[0][0]) if rows else ""

    def search(
        self,
        owner: str | None = None,
        status: str | None = None,
        recipient_id: str | None = None,
        patient_key: str | None = None,
    ) -> list[dict[str, Any]]:
        clauses, params = [], []
        if patient_key is not None:
            clauses.append("patient_key = ?")
            params.append(patient_key)
        if recipient_id is not None:
            clauses.append("recipient_id = ?")
            params.append(recipient_id)
        if owner is not None:
            clauses.append("owner = ?")
            params.append(owner)
        if status is not None:
            clauses.append("status = ?")
            params.append(status)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.db.query(f"SELECT resource FROM tasks{where} ORDER BY authored_on, id", params)
        return [dict(json.loads(row[0])) for row in rows]

    def update(self, task_id: str, fields: dict[str, Any], source: str) -> TaskChange:
        """Apply a performer's change (status, statusReason, businessStatus, output).

        Raises KeyError when the Task is unknown and ValueError (with the rule's
        reason) when the status change is not allowed.
        """
        with self.db.transaction():
            rows = self.db.query("SELECT resource, status, authored_on, version FROM tasks WHERE id = ?", (task_id,))
            if not rows:
                raise KeyError(task_id)
            resource, current, authored, version = json.loads(rows[0][0]), rows[0][1], rows[0][2], rows[0][3]
            wanted = str(fields.get("status", current))
            if wanted != current and (reason := check_transition(current, wanted)) is not None:
                raise ValueError(reason)
            if wanted == current and current in TERMINAL:
                raise ValueError(f"the Task is already {current}; a finished Task does not change")
            stamp = now_iso()
            resource.update(fields)
            resource["meta"] = {**resource.get("meta", {}), "versionId": str(version + 1), "lastUpdated": stamp}
            turnaround = seconds_between(authored, stamp) if wanted == "completed" else None
            self.db.execute(
                "UPDATE tasks SET status = ?, last_modified = ?, version = ?, resource = ?,"
                " completed_at = ?, turnaround_s = ? WHERE id = ?",
                (
                    wanted,
                    stamp,
                    version + 1,
                    json.dumps(resource),
                    stamp if turnaround is not None else None,
                    turnaround,
                    task_id,
                ),
            )
            if wanted != current:
                self._change(task_id, current, wanted, stamp, source)
        return TaskChange(task_id, current, wanted, stamp, turnaround, resource)

    def cancel(self, task_id: str, reason: str, source: str) -> TaskChange | None:
        """Cancel an open Task on the requester's side (a correction); idempotent for one ``source``.

        The change when this call (or an earlier one with the same ``source``) cancelled it; None when
        the Task is unknown or was finished otherwise (completed, rejected, ... before the correction).
        """
        with self.db.transaction():
            rows = self.db.query("SELECT resource, status, version FROM tasks WHERE id = ?", (task_id,))
            if not rows:
                return None
            resource, current, version = json.loads(rows[0][0]), str(rows[0][1]), int(rows[0][2])
            if current == "cancelled" and (None if not (h := self.history(task_id)) else h[-1][2]) == source:
                return TaskChange(task_id, current, current, str(resource["meta"]["lastUpdated"]), None, resource)
            if current in TERMINAL:
                return None
            stamp = now_iso()
            resource.update({"status": "cancelled", "statusReason": {"text": reason}, "lastModified": stamp})
            resource["meta"] = {**resource.get("meta", {}), "versionId": str(version + 1), "lastUpdated": stamp}
            self.db.execute(
                "UPDATE tasks SET status = 'cancelled', last_modified = ?, version = ?, resource = ? WHERE id = ?",
                (stamp, version + 1, json.dumps(resource), task_id),
            )
            self._change(task_id, current, "cancelled", stamp, source)
        return TaskChange(task_id, current, "cancelled", stamp, None, resource)

    def reassign(self, retired: list[str], survivor: str) -> int:
        """A merge: the retired patients' Tasks follow the survivor (column and ``Task.for``); how many."""
        moved = 0
        with self.db.transaction():
            for old in retired:
                rows = self.db.query("SELECT id, resource FROM tasks WHERE patient_key = ?", (old,))
                for task_id, text in rows:
                    resource = {**json.loads(text), "for": patient_reference(survivor)}
                    self.db.execute(
                        "UPDATE tasks SET patient_key = ?, resource = ? WHERE id = ?",
                        (survivor, json.dumps(resource), task_id),
                    )
                    moved += 1
        return moved

    def _change(self, task_id: str, old: str | None, new: str, at: str, source: str) -> None:
        self.db.execute(
            "INSERT INTO task_changes (task_id, from_status, to_status, at, source) VALUES (?, ?, ?, ?, ?)",
            (task_id, old, new, at, source),
        )

    def history(self, task_id: str) -> list[tuple[str | None, str, str]]:
        rows = self.db.query(
            "SELECT from_status, to_status, source FROM task_changes WHERE task_id = ? ORDER BY id", (task_id,)
        )
        return [(row[0], row[1], row[2]) for row in rows]

    def turnaround_s(self, task_id: str) -> float | None:
        rows = self.db.query("SELECT turnaround_s FROM tasks WHERE id = ?", (task_id,))
        return float(rows[0][0]) if rows and rows[0][0] is not None else None

    def due_overdue(self, now: str) -> list[dict[str, Any]]:
        """Open Tasks past restriction.period.end that have not yet raised an overdue alert."""
        terminal = ", ".join(f"'{s}'" for s in sorted(TERMINAL))
        rows = self.db.query(
            f"SELECT resource, recipient_id FROM tasks WHERE due IS NOT NULL AND due < ? AND overdue_at IS NULL"
            f" AND status NOT IN ({terminal}) ORDER BY due",
            (utc_iso(now),),
        )
        return [{**json.loads(row[0]), "_recipient_id": row[1]} for row in rows]

    def mark_overdue(self, task_id: str) -> dict[str, Any] | None:
        """The Task, now with ``businessStatus`` overdue, for the one caller that flags it (so an alert is
        raised once); None for every other caller."""
        with self.db.transaction():
            stamp = now_iso()
            flag = "UPDATE tasks SET overdue_at = ? WHERE id = ? AND overdue_at IS NULL"
            if not self.db.execute(flag, (stamp, task_id)):
                return None
            rows = self.db.query("SELECT resource, version FROM tasks WHERE id = ?", (task_id,))
            resource, version = json.loads(rows[0][0]), int(rows[0][1])
            resource["businessStatus"] = {"coding": [{"system": BUSINESS_STATUS, "code": "overdue"}], "text": "overdue"}
            resource["meta"] = {**resource.get("meta", {}), "versionId": str(version + 1), "lastUpdated": stamp}
            self.db.execute(
                "UPDATE tasks SET version = ?, resource = ?, last_modified = ? WHERE id = ?",
                (version + 1, json.dumps(resource), stamp, task_id),
            )
        return dict(resource)
