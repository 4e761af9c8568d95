"""Versioned journal migrations on SQLite and PostgreSQL: one table says which steps a journal has had.

``schema_migrations`` holds one row per applied step (version, name, when). ``upgrade`` applies the
missing steps in order, each recorded in the same transaction as its DDL (both databases have
transactional DDL), under a lock so that workers starting together migrate once: SQLite's
``BEGIN IMMEDIATE``, PostgreSQL's ``pg_advisory_xact_lock``. It runs at every start-up
(``open_journal``) and by ``carehub db upgrade``.

Step 1 is the journal of carehub 0.1.0; every later change to a table is a new step here, never an
edit of a released ``CREATE TABLE`` (tests/delivery/test_migrations.py compares a journal upgraded
from 0.1.0 with a new one, column by column, on both databases). The steps up to 3 are idempotent
so that a journal made before versioning existed (with or without the later columns) is adopted
as it is. Steps are only ever additive, so a worker of the previous release keeps working on an
upgraded journal during a rolling upgrade.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from carehub.core.clock import now_iso
from carehub.journal import audit, carefacts, careplans, logistics, messages, pauses, security, store, tasks
from carehub.journal.db import Database

#: Any constant: the PostgreSQL advisory lock id migrations hold.
LOCK_ID = 0x636172656875  # "carehu"

CREATE = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    apply: Callable[[Database], None]


def _statements(*groups: list[str]) -> Callable[[Database], None]:
    def apply(db: Database) -> None:
        for group in groups:
            for statement in group:
                db.execute(statement)

    return apply


def columns(db: Database, table: str) -> dict[str, str]:
    """Column name -> declared type (upper case) of a table."""
    if db.dialect == "sqlite":
        return {str(r[1]): str(r[2]).upper() for r in db.query(f"PRAGMA table_info({table})")}
    rows = db.query(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_name = ? AND table_schema = current_schema()",
        (table,),
    )
    return {str(r[0]): str(r[1]).upper() for r in rows}


def _steps(*steps: Callable[[Database], None]) -> Callable[[Database], None]:
    def apply(db: Database) -> None:
        for step in steps:
            step(db)

    return apply


def _add_columns(table: str, added: tuple[tuple[str, str], ...]) -> Callable[[Database], None]:
    def apply(db: Database) -> None:
        present = columns(db, table)
        for name, kind in added:
            if name not in present:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")

    return apply


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "carehub 0.1.0: delivery attempts, outcomes, dead letters, order state, tasks, audit events",
        _statements(store.SCHEMA, tasks.SCHEMA, audit.SCHEMA),
    ),
    Migration(
        2,
        "audit_events: delivery_id, phase, attempt (a decision per delivery attempt)",
        _add_columns(
            "audit_events",
            (
                ("delivery_id", "TEXT NOT NULL DEFAULT ''"),
                ("phase", "TEXT NOT NULL DEFAULT 'plan'"),
                ("attempt", "INTEGER NOT NULL DEFAULT 0"),
            ),
        ),
    ),
    Migration(3, "security_events: refused HTTP requests", _statements(security.SCHEMA)),
    Migration(
        4,
        "tasks: patient_key (GET /fhir/Task?patient=); patient_links (merges)",
        _steps(_add_columns("tasks", tasks.PATIENT_COLUMN), _statements(tasks.PATIENT_INDEX, store.PATIENT_LINKS)),
    ),
    Migration(5, "messages: the message journal (console search), indexed", _statements(messages.SCHEMA)),
    Migration(6, "recipient_pauses: recipients paused by hand (console)", _statements(pauses.SCHEMA)),
    Migration(7, "care_facts, care_fact_tasks: what the scorecard counts", _statements(carefacts.SCHEMA)),
    Migration(
        8,
        "orders, offers (one holder per order), order_steps, logistics_lease: the discharge logistics cascade",
        _statements(logistics.SCHEMA),
    ),
    Migration(
        9,
        "messages: error_code, reason (refused messages are journaled)",
        _add_columns("messages", messages.REFUSAL_COLUMNS),
    ),
    Migration(
        10,
        "care_plans, care_plan_members, care_plan_tasks: transition-of-care CarePlans kept in step with their Tasks",
        _statements(careplans.SCHEMA),
    ),
    Migration(
        11,
        "indexes: care_facts by (visit, kind, time), task_changes by task (the scorecard's per-row lookups)",
        _statements(carefacts.INDEXES),
    ),
    Migration(
        12,
        "indexes: care_facts_by_visit dropped (care_facts_by_visit_kind serves its lookups)",
        _statements(carefacts.DROPPED),
    ),
)
LATEST = MIGRATIONS[-1].version


def applied(db: Database) -> dict[int, str]:
    """Version -> name of every step this journal has had ({} before the first upgrade)."""
    db.execute(CREATE)
    return {int(r[0]): str(r[1]) for r in db.query("SELECT version, name FROM schema_migrations ORDER BY version")}


def upgrade(db: Database) -> list[Migration]:
    """Apply the steps the journal has not had, in order, each with its record; the steps applied."""
    done: list[Migration] = []
    with db.transaction():
        if db.dialect == "postgresql":
            db.query("SELECT pg_advisory_xact_lock(?)", (LOCK_ID,))
        have = applied(db)
        for step in MIGRATIONS:
            if step.version in have:
                continue
            step.apply(db)
            db.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (step.version, step.name, now_iso()),
            )
            done.append(step)
    return done
