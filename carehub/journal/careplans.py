"""Transition-of-care CarePlans: one per discharge episode, its Tasks, and the care team members who hold it.

A CarePlan is recorded when the route stage plans its packets (streams.packet.sync):
the plan as carehub keeps it (subject: the hub's patient identity), the Tasks its
activities reference, and per member (a packet recipient) the packet delivery it was
sent in and the security labels it was disclosed under. Recording the same episode
again (a repeated A03) keeps the id, adds new activities and members and bumps the
version only when something changed. A Task's change updates the plan
(``update``); a cancelled discharge revokes it; a merge moves it to the survivor.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from carehub.core.clock import now_iso
from carehub.journal.db import Database

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS care_plans (
        id TEXT PRIMARY KEY, patient_key TEXT NOT NULL, status TEXT NOT NULL, version INTEGER NOT NULL,
        resource TEXT NOT NULL, updated_at TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS care_plans_by_patient ON care_plans (patient_key)",
    """CREATE TABLE IF NOT EXISTS care_plan_members (
        care_plan_id TEXT NOT NULL, recipient_id TEXT NOT NULL, delivery_id TEXT NOT NULL, labels TEXT NOT NULL,
        PRIMARY KEY (care_plan_id, recipient_id))""",
    """CREATE TABLE IF NOT EXISTS care_plan_tasks (
        task_id TEXT PRIMARY KEY, care_plan_id TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS care_plan_tasks_by_plan ON care_plan_tasks (care_plan_id)",
]


@dataclass(frozen=True, slots=True)
class Member:
    recipient_id: str
    #: The packet delivery the member received the plan in (updates are sent only when it was delivered).
    delivery_id: str
    labels: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class StoredPlan:
    id: str
    patient_key: str
    status: str
    version: int
    resource: dict[str, Any]
    members: tuple[Member, ...]
    task_ids: tuple[str, ...]


def _activities(plan: dict[str, Any]) -> list[str]:
    return [str(a.get("reference", {}).get("reference", "")) for a in plan.get("activity", [])]


class CarePlanStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record(
        self, plan: dict[str, Any], patient_key: str, members: Sequence[Member], task_ids: Sequence[str]
    ) -> bool:
        """Store (or extend) the episode's plan; True when it is new or changed."""
        with self.db.transaction():
            rows = self.db.query("SELECT resource, version FROM care_plans WHERE id = ?", (plan["id"],))
            changed = not rows
            if rows:
                stored, version = json.loads(rows[0][0]), int(rows[0][1])
                known = set(_activities(stored))
                added = [a for a in plan.get("activity", []) if a["reference"]["reference"] not in known]
                merged = {**stored, "activity": [*stored.get("activity", []), *added]} if added else stored
                if stored.get("status") == "revoked":  # the discharge again after its cancel: active again
                    merged = {**merged, "status": "active"}
                changed = merged != stored
                if changed:
                    self.db.execute(
                        "UPDATE care_plans SET status = ?, version = ?, resource = ?, updated_at = ? WHERE id = ?",
                        (merged["status"], version + 1, json.dumps(merged), now_iso(), plan["id"]),
                    )
            else:
                self.db.execute(
                    "INSERT INTO care_plans (id, patient_key, status, version, resource, updated_at)"
                    " VALUES (?, ?, ?, 1, ?, ?)",
                    (plan["id"], patient_key, plan.get("status", "active"), json.dumps(plan), now_iso()),
                )
            for member in members:
                self.db.execute(
                    "INSERT INTO care_plan_members (care_plan_id, recipient_id, delivery_id, labels)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (care_plan_id, recipient_id)"
                    " DO UPDATE SET delivery_id = excluded.delivery_id, labels = excluded.labels",
                    (plan["id"], member.recipient_id, member.delivery_id, json.dumps(list(member.labels))),
                )
            for task_id in task_ids:
                self.db.execute(
                    "INSERT INTO care_plan_tasks (task_id, care_plan_id) VALUES (?, ?)"
                    " ON CONFLICT (task_id) DO NOTHING",
                    (task_id, plan["id"]),
                )
        return changed

    def get(self, plan_id: str) -> StoredPlan | None:
        rows = self.db.query(
            "SELECT id, patient_key, status, version, resource FROM care_plans WHERE id = ?", (plan_id,)
        )
        if not rows:
            return None
        members = self.db.query(
            "SELECT recipient_id, delivery_id, labels FROM care_plan_members WHERE care_plan_id = ?"
            " ORDER BY recipient_id",
            (plan_id,),
        )
        tasks = self.db.query("SELECT task_id FROM care_plan_tasks WHERE care_plan_id = ? ORDER BY task_id", (plan_id,))
        pid, patient, status, version, resource = rows[0]
        return StoredPlan(
            str(pid), str(patient), str(status), int(version), dict(json.loads(resource)),
            tuple(Member(str(r), str(d), tuple(json.loads(labels))) for r, d, labels in members),
            tuple(str(t[0]) for t in tasks),
        )  # fmt: skip

    def for_task(self, task_id: str) -> StoredPlan | None:
        """The plan one of whose activities is the Task (None: the Task belongs to no plan)."""
        rows = self.db.query("SELECT care_plan_id FROM care_plan_tasks WHERE task_id = ?", (task_id,))
        return self.get(str(rows[0][0])) if rows else None

    def update(self, plan_id: str, resource: dict[str, Any]) -> int | None:
        """Store the plan's new state; its version (unchanged when nothing changed; None when unknown)."""
        with self.db.transaction():
            rows = self.db.query("SELECT resource, version FROM care_plans WHERE id = ?", (plan_id,))
            if not rows:
                return None
            stored, version = json.loads(rows[0][0]), int(rows[0][1])
            if stored == resource:
                return version
            self.db.execute(
                "UPDATE care_plans SET status = ?, version = ?, resource = ?, updated_at = ? WHERE id = ?",
                (resource.get("status", "active"), version + 1, json.dumps(resource), now_iso(), plan_id),
            )
        return version + 1

    def reassign(self, retired: Sequence[str], survivor: str) -> int:
        """A merge: the retired patients' plans follow the survivor (the id stays); how many."""
        moved = 0
        for old in retired:
            moved += self.db.execute("UPDATE care_plans SET patient_key = ? WHERE patient_key = ?", (survivor, old))
        return moved

    def of_patient(self, patient_key: str) -> list[str]:
        rows = self.db.query("SELECT id FROM care_plans WHERE patient_key = ? ORDER BY id", (patient_key,))
        return [str(r[0]) for r in rows]
