"""The audit trail on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from journal.audit import AuditStore
from journal.db import Database
from streams.consent.audit import audit_event
from streams.consent.decide import DENY, PERMIT, ConsentDecision, Disclosure

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AuditStore]:
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path}/journal.db")
        yield _migrated(db)
        db.close()
        return
    schema = f"audit_{uuid.uuid4().hex[:8]}"
    admin = Database(PG_URL)
    try:
        admin.execute(f"CREATE SCHEMA {schema}")
    except Exception as exc:  # pragma: no cover - the machine runs PostgreSQL; CI starts it
        pytest.fail(f"PostgreSQL at {PG_URL} is not reachable: {type(exc).__name__}")
    db = Database(f"{PG_URL}?options=-csearch_path%3D{schema}")
    yield _migrated(db)
    db.close()
    admin.execute(f"DROP SCHEMA {schema} CASCADE")
    admin.close()


def _migrated(db: Database) -> AuditStore:
    audit = AuditStore(db)
    audit.migrate()
    return audit


def _event(decision: ConsentDecision, recipient: str, recorded: str, event_id: str = "ev1") -> dict[str, object]:
    disclosure = Disclosure(recipient, "pcp", "notify", "TREAT")
    return audit_event(decision, disclosure, event_id=event_id, patient_key="RGH|MRN1", recorded=recorded,
                       map_version="v1")  # fmt: skip


def test_accounting_of_disclosures_lists_permits_and_suppressions_once(store: AuditStore) -> None:
    permit = ConsentDecision(PERMIT, "named-recipient", "consent c1 permits", "c1")
    deny = ConsentDecision(DENY, "no-permitting-consent", "no consent on file")
    store.record(_event(permit, "pcp-riverside", "2026-11-01T10:00:00Z"))
    store.record(_event(permit, "pcp-riverside", "2026-11-01T10:00:00Z"))  # a replay
    store.record(_event(deny, "cbo-food-bank", "2026-11-01T10:00:01Z"))
    store.record(_event(deny, "cbo-food-bank", "2026-12-01T10:00:00Z", event_id="ev2"))
    rows = store.disclosures("RGH|MRN1", since="2026-11-01", until="2026-11-30")
    assert [(r.recipient_id, r.outcome, r.consent_id) for r in rows] == [
        ("pcp-riverside", "permit", "c1"),
        ("cbo-food-bank", "deny", ""),
    ]
    assert rows[1].reason == "no consent on file"
    stored = store.resource(rows[0].audit_id)
    assert stored is not None and stored["resourceType"] == "AuditEvent"
    assert store.disclosures("RGH|OTHER") == []
