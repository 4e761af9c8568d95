"""The journal's tables exactly as carehub 0.1.0 (commit 62b2a06) created them, to build old journals from.

Copied from ``git show 62b2a06:carehub/journal/<module>.py`` (their ``SCHEMA`` lists); tests/delivery/test_migrations.py
checks the copy against git when the history is there.
"""

from __future__ import annotations

COMMIT = "62b2a06"
MODULES = ("store", "tasks", "audit")

SCHEMA_0_1_0: dict[str, list[str]] = {
    "store": [
        """CREATE TABLE IF NOT EXISTS delivery_attempts (
        id {serial}, delivery_id TEXT NOT NULL, idempotency_key TEXT NOT NULL, recipient_id TEXT NOT NULL,
        action TEXT NOT NULL, channel TEXT NOT NULL, attempt INTEGER NOT NULL, result TEXT NOT NULL,
        status_code INTEGER, detail TEXT NOT NULL, at TEXT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS delivery_attempts_by_delivery ON delivery_attempts (delivery_id)",
        """CREATE TABLE IF NOT EXISTS delivery_outcomes (
        delivery_id TEXT PRIMARY KEY, idempotency_key TEXT NOT NULL, event_id TEXT NOT NULL,
        recipient_id TEXT NOT NULL, action TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL,
        reason TEXT NOT NULL, http_status INTEGER, finished_at TEXT NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS dead_letters (
        delivery_id TEXT PRIMARY KEY, recipient_id TEXT NOT NULL, error_code TEXT NOT NULL,
        reason TEXT NOT NULL, record TEXT NOT NULL, parked_at TEXT NOT NULL, state TEXT NOT NULL,
        replayed_at TEXT)""",
        """CREATE TABLE IF NOT EXISTS delivery_holds (
        recipient_id TEXT NOT NULL, patient_key TEXT NOT NULL, delivery_id TEXT NOT NULL, since TEXT NOT NULL,
        PRIMARY KEY (recipient_id, patient_key))""",
        """CREATE TABLE IF NOT EXISTS delivery_queue (
        seq {serial}, recipient_id TEXT NOT NULL, patient_key TEXT NOT NULL, delivery_id TEXT NOT NULL UNIQUE,
        record TEXT NOT NULL, queued_at TEXT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS delivery_queue_by_pair ON delivery_queue (recipient_id, patient_key, seq)",
    ],
    "tasks": [
        """CREATE TABLE IF NOT EXISTS tasks (
        id TEXT PRIMARY KEY, recipient_id TEXT NOT NULL, owner TEXT NOT NULL, requester TEXT NOT NULL,
        status TEXT NOT NULL, authored_on TEXT NOT NULL, due TEXT, last_modified TEXT NOT NULL,
        completed_at TEXT, turnaround_s REAL, overdue_at TEXT, version INTEGER NOT NULL, resource TEXT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS tasks_by_owner ON tasks (owner, status)",
        """CREATE TABLE IF NOT EXISTS task_changes (
        id {serial}, task_id TEXT NOT NULL, from_status TEXT, to_status TEXT NOT NULL, at TEXT NOT NULL,
        source TEXT NOT NULL)""",
    ],
    "audit": [
        """CREATE TABLE IF NOT EXISTS audit_events (
        audit_id TEXT PRIMARY KEY, patient_key TEXT NOT NULL, recorded TEXT NOT NULL, recipient_id TEXT NOT NULL,
        action TEXT NOT NULL, outcome TEXT NOT NULL, rule TEXT NOT NULL, reason TEXT NOT NULL,
        consent_id TEXT NOT NULL, event_id TEXT NOT NULL, map_version TEXT NOT NULL, resource TEXT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS audit_events_by_patient ON audit_events (patient_key, recorded)",
    ],
}
