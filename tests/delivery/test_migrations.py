"""Journal migrations: a journal made by carehub 0.1.0 is upgraded in place, on SQLite and on the real
PostgreSQL, keeps its rows, ends up with the same tables as a new journal, and is read by today's code;
driver errors leave the journal as JournalError, and a lost PostgreSQL connection is made again."""

from __future__ import annotations

import ast
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from carehub.cli import main
from carehub.core.errors import JournalError
from carehub.journal import open_journal
from carehub.journal.db import RECONNECT_MAX_S, Database
from carehub.journal.migrations import LATEST, MIGRATIONS, applied, columns, upgrade
from tests.conftest import REPO
from tests.delivery.conftest import PG_ADMIN
from tests.delivery.helpers import delivery
from tests.delivery.journal_0_1_0 import COMMIT, MODULES, SCHEMA_0_1_0

TABLES = ("delivery_attempts", "delivery_outcomes", "dead_letters", "delivery_holds", "delivery_queue", "tasks",
          "task_changes", "audit_events", "security_events")  # fmt: skip


@pytest.fixture
def urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two empty databases of the dialect under test: one for the old journal, one for a new one."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/old.db", f"sqlite:///{tmp_path}/new.db"
        return
    admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    schemas = [f"carehub_m_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    for schema in schemas:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    yield tuple(f"{PG_ADMIN}?options=-csearch_path%3D{s}" for s in schemas)  # type: ignore[misc]
    for schema in schemas:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
    admin.close()


def make_0_1_0_journal(url: str) -> None:
    """The tables carehub 0.1.0 made, with a dead letter, an outcome and an audit event in them."""
    db = Database(url)
    for module in MODULES:
        for statement in SCHEMA_0_1_0[module]:
            db.execute(statement)
    parked = delivery(1)
    db.execute(
        "INSERT INTO dead_letters (delivery_id, recipient_id, error_code, reason, record, parked_at, state)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            parked.delivery_id,
            parked.recipient_id,
            "http-410",
            "gone",
            parked.to_json().decode(),
            "2026-11-01",
            "parked",
        ),
    )
    db.execute(
        "INSERT INTO audit_events (audit_id, patient_key, recorded, recipient_id, action, outcome, rule, reason,"
        " consent_id, event_id, map_version, resource) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ("a1", "RGH|MRN1", "2026-11-01T10:00:00Z", "pcp", "notify", "permit", "tpo-class", "TPO", "", "e1", "v1", "{}"),
    )
    db.close()


@pytest.mark.integration
@pytest.mark.parametrize("urls", ["sqlite", "postgresql"], indirect=True)
def test_a_0_1_0_journal_is_upgraded_in_place(urls: tuple[str, str]) -> None:
    old_url, new_url = urls
    make_0_1_0_journal(old_url)
    upgraded = open_journal(old_url)  # what every process does at start-up
    fresh = open_journal(new_url)
    try:
        assert sorted(applied(upgraded.db)) == [m.version for m in MIGRATIONS] == list(range(1, LATEST + 1))
        for table in TABLES:
            assert columns(upgraded.db, table) == columns(fresh.db, table), f"{table} differs from a new journal"
        # The old rows are there and today's code reads them.
        (row,) = upgraded.audit.disclosures("RGH|MRN1")
        assert (row.audit_id, row.delivery_id, row.phase, row.attempt) == ("a1", "", "plan", 0)
        assert [d.delivery_id for d in upgraded.dead_letters()] == [delivery(1).delivery_id]
    finally:
        upgraded.close()
        fresh.close()
    again = Database(old_url)
    try:
        assert upgrade(again) == [], "a second upgrade applies nothing"
    finally:
        again.close()


def indexes(db: Database, table: str) -> set[str]:
    """The names of the indexes the database holds on one table (primary keys and constraints aside)."""
    if db.dialect == "postgresql":
        rows = db.query(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = ? AND indexname <> ?",
            (table, f"{table}_pkey"),
        )
    else:
        rows = db.query(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL", (table,)
        )
    return {str(r[0]) for r in rows}


@pytest.mark.integration
@pytest.mark.parametrize("urls", ["sqlite", "postgresql"], indirect=True)
def test_a_journal_at_version_11_loses_the_index_the_scorecard_index_made_redundant(urls: tuple[str, str]) -> None:
    old_url, new_url = urls
    old = Database(old_url)
    fresh = open_journal(new_url)
    try:
        with old.transaction():  # what steps 1-11 made before step 12 existed, recorded as upgrade() does
            applied(old)
            for step in MIGRATIONS[:11]:
                step.apply(old)
                old.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (step.version, step.name, "2026-12-01T00:00:00Z"),
                )
            old.execute("CREATE INDEX care_facts_by_visit ON care_facts (visit_id)")
        assert "care_facts_by_visit" in indexes(old, "care_facts")
        assert [m.version for m in upgrade(old)] == list(range(12, LATEST + 1))
        assert "care_facts_by_visit" not in indexes(old, "care_facts")
        assert indexes(old, "care_facts") == indexes(fresh.db, "care_facts")
    finally:
        old.close()
        fresh.close()


@pytest.mark.parametrize("urls", ["sqlite"], indirect=True)
def test_carehub_db_upgrade_and_status(urls: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    old_url, _ = urls
    make_0_1_0_journal(old_url)
    assert main(["db", "status", "--database-url", old_url]) == 0
    assert f"{LATEST} pending of {LATEST} - run carehub db upgrade" in capsys.readouterr().out
    assert main(["db", "upgrade", "--database-url", old_url]) == 0
    out = capsys.readouterr().out
    assert f"applied 2: {MIGRATIONS[1].name}" in out and out.rstrip().endswith(f"at version {LATEST}")
    assert main(["db", "upgrade", "--database-url", old_url]) == 0
    assert "nothing to apply" in capsys.readouterr().out
    assert "old.db" not in out


def test_the_0_1_0_tables_are_those_of_commit_62b2a06() -> None:
    for module in MODULES:
        shown = subprocess.run(
            ["git", "show", f"{COMMIT}:journal/{module}.py"], cwd=REPO, capture_output=True, text=True
        )
        if shown.returncode != 0:
            pytest.skip(f"this clone lacks commit {COMMIT}")
        (schema,) = [
            ast.literal_eval(node.value)
            for node in ast.parse(shown.stdout).body
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "SCHEMA"
        ]
        assert schema == SCHEMA_0_1_0[module]


def test_driver_errors_are_journal_errors_without_values(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/j.db")
    try:
        db.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
        db.execute("INSERT INTO t VALUES (?)", ("RGH|MRN100871",))
        with pytest.raises(JournalError) as refused:
            db.execute("INSERT INTO t VALUES (?)", ("RGH|MRN100871",))
        assert refused.value.code == "journal-error" and not refused.value.unavailable
        assert "MRN100871" not in str(refused.value) and "IntegrityError" in str(refused.value)
        with pytest.raises(JournalError), db.transaction():
            db.execute("INSERT INTO nowhere VALUES (1)")
    finally:
        db.close()


@pytest.mark.integration
def test_a_lost_postgresql_connection_is_made_again_after_a_backoff() -> None:
    db = Database(PG_ADMIN)
    admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    try:
        (pid,) = db.query("SELECT pg_backend_pid()")[0]
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(JournalError) as lost:
            db.query("SELECT 1")
        assert lost.value.unavailable
        with pytest.raises(JournalError, match="reconnecting in"):
            db.query("SELECT 1")  # within the backoff: at once, no connect attempt
        deadline = time.monotonic() + RECONNECT_MAX_S + 5
        while True:
            try:
                (new_pid,) = db.query("SELECT pg_backend_pid()")[0]
                break
            except JournalError:
                assert time.monotonic() < deadline, "never reconnected"
                time.sleep(0.05)
        assert new_pid != pid
    finally:
        admin.close()
        db.close()
