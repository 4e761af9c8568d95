"""The audit trail on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from carehub.core.errors import JournalError
from carehub.core.records import DeliveryOutcome
from carehub.journal.audit import AuditStore
from carehub.journal.db import Database
from carehub.journal.store import Journal
from carehub.streams.consent.audit import SEND, audit_event
from carehub.streams.consent.decide import DENY, PERMIT, ConsentDecision, Disclosure
from tests.delivery.helpers import delivery

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=["sqlite", "postgresql"])
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Journal]:
    if request.param == "sqlite":
        j = Journal(f"sqlite:///{tmp_path}/journal.db")
        j.migrate()
        yield j
        j.close()
        return
    schema = f"audit_{uuid.uuid4().hex[:8]}"
    admin = Database(PG_URL)
    try:
        admin.execute(f"CREATE SCHEMA {schema}")
    except Exception as exc:  # pragma: no cover - the machine runs PostgreSQL; CI starts it
        pytest.fail(f"PostgreSQL at {PG_URL} is not reachable: {type(exc).__name__}")
    j = Journal(f"{PG_URL}?options=-csearch_path%3D{schema}")
    j.migrate()
    yield j
    j.close()
    admin.execute(f"DROP SCHEMA {schema} CASCADE")
    admin.close()


@pytest.fixture
def store(journal: Journal) -> AuditStore:
    return journal.audit


def _event(
    decision: ConsentDecision, recipient: str, recorded: str, event_id: str = "ev1", *, delivery_id: str = "",
    phase: str = "plan", attempt: int = 0,
) -> dict[str, object]:  # fmt: skip
    disclosure = Disclosure(recipient, "pcp", "notify", "TREAT")
    return audit_event(decision, disclosure, event_id=event_id, patient_key="RGH|MRN1", recorded=recorded,
                       map_version="v1", delivery_id=delivery_id or f"{event_id}-{recipient}", phase=phase,
                       attempt=attempt)  # fmt: skip


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


PERMIT_C1 = ConsentDecision(PERMIT, "named-recipient", "consent c1 permits", "c1")


def test_a_batch_is_stored_in_one_statement_as_read_and_a_bad_row_stores_none_of_it(store: AuditStore) -> None:
    """``record_many`` (the audit stage): the JSON kept as it was read, a repeat ignored; a row the trail cannot
    hold (no recipient agent) fails the batch whole, so the stage can store the others one by one."""
    import orjson

    permit = ConsentDecision(PERMIT, "named-recipient", "consent c1 permits", "c1")
    first, second = _event(permit, "pcp-a", "2026-11-02T10:00:00Z"), _event(permit, "pcp-b", "2026-11-02T10:00:01Z")
    raw = [orjson.dumps(first, option=orjson.OPT_INDENT_2), orjson.dumps(second)]
    store.record_many([first, second, first], [raw[0], raw[1], raw[0]])
    rows = store.disclosures("RGH|MRN1", since="2026-11-02", until="2026-11-03")
    assert [r.recipient_id for r in rows] == ["pcp-a", "pcp-b"]
    kept = store.db.query("SELECT resource FROM audit_events WHERE audit_id = ?", (first["id"],))
    assert kept[0][0] == raw[0].decode(), "the AuditEvent is kept as it was read, not encoded again"
    assert store.resource(str(first["id"])) == first
    broken = {**_event(permit, "pcp-c", "2026-11-02T10:00:02Z"), "agent": []}
    third = _event(permit, "pcp-d", "2026-11-02T10:00:03Z")
    with pytest.raises(IndexError):
        store.record_many([third, broken])
    with pytest.raises(JournalError):  # a failing row leaves nothing of the batch
        store.db.execute_many(
            "INSERT INTO audit_events (audit_id, patient_key, recorded, recipient_id, action, outcome, rule,"
            " reason, consent_id, event_id, map_version, resource) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [("x1", "RGH|MRN1", "2026-11-02T11:00:00Z", "r", "a", "o", "r", "r", "", "e", "v", "{}"),
             ("x2", "RGH|MRN1", "2026-11-02T11:00:01Z", None, "a", "o", "r", "r", "", "e", "v", "{}")],
        )  # fmt: skip
    ids = [r.audit_id for r in store.disclosures("RGH|MRN1", since="2026-11-02", until="2026-11-03")]
    assert ids == [first["id"], second["id"]]


def test_two_deliveries_of_one_event_and_a_re_decision_are_each_kept(store: AuditStore) -> None:
    """The two TCM tasks of one discharge are two rows, and deciding again on one is a third."""
    store.record(_event(PERMIT_C1, "pcp-riverside", "2026-11-01T10:00:00Z", delivery_id="tcm-contact"))
    store.record(_event(PERMIT_C1, "pcp-riverside", "2026-11-01T10:00:00Z", delivery_id="tcm-visit"))
    store.record(_event(PERMIT_C1, "pcp-riverside", "2026-11-01T10:05:00Z", delivery_id="tcm-visit"))
    rows = store.disclosures("RGH|MRN1")
    assert [(r.delivery_id, r.recorded) for r in rows] == [
        ("tcm-contact", "2026-11-01T10:00:00Z"),
        ("tcm-visit", "2026-11-01T10:00:00Z"),
        ("tcm-visit", "2026-11-01T10:05:00Z"),
    ]


def _outcome(d_id: str, status: str) -> DeliveryOutcome:
    return DeliveryOutcome(d_id, d_id, "ev1", "pcp", "notify", status, 1, "", "2026-11-01T10:00:02Z")


def test_the_accounting_shows_what_became_of_each_delivery(journal: Journal) -> None:
    sent, waiting, parked, stopped = (delivery(n, recipient="pcp") for n in range(4))
    for n, d in enumerate((sent, waiting, parked, stopped)):
        journal.audit.record(_event(PERMIT_C1, "pcp", f"2026-11-01T10:00:0{n}Z", delivery_id=d.delivery_id,
                                    phase=SEND, attempt=1))  # fmt: skip
    refused = delivery(9, recipient="pcp")
    journal.audit.record(_event(ConsentDecision(DENY, "send-time:x", "revoked"), "pcp", "2026-11-01T10:00:08Z",
                                delivery_id=refused.delivery_id, phase=SEND, attempt=2))  # fmt: skip
    journal.record_outcome(_outcome(refused.delivery_id, "suppressed"))
    journal.audit.record(_event(ConsentDecision(DENY, "x", "no consent"), "cbo", "2026-11-01T10:00:09Z"))
    journal.record_delivered(sent, 1, "ok", 200, "", _outcome(sent.delivery_id, "delivered"))
    journal.record_attempt(waiting, 1, "transient", 503, "busy")
    journal.record_attempt(parked, 1, "permanent", 400, "bad")
    journal.park(parked, "delivery-rejected", "permanent: bad")
    journal.record_outcome(_outcome(parked.delivery_id, "failed"))
    journal.record_outcome(_outcome(stopped.delivery_id, "suppressed"))
    rows = journal.audit.disclosures("RGH|MRN1")
    assert [(r.phase, r.delivery) for r in rows] == [
        ("send", "delivered"),
        ("send", "retrying"),
        ("send", "dead-lettered"),
        ("send", "suppressed at send time"),
        ("send", "suppressed at send time"),
        ("plan", "not sent"),
    ]


def test_an_older_journal_gains_the_new_columns(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/old.db")
    db.execute(
        "CREATE TABLE audit_events (audit_id TEXT PRIMARY KEY, patient_key TEXT NOT NULL, recorded TEXT NOT NULL,"
        " recipient_id TEXT NOT NULL, action TEXT NOT NULL, outcome TEXT NOT NULL, rule TEXT NOT NULL,"
        " reason TEXT NOT NULL, consent_id TEXT NOT NULL, event_id TEXT NOT NULL, map_version TEXT NOT NULL,"
        " resource TEXT NOT NULL)"
    )
    db.close()
    j = Journal(f"sqlite:///{tmp_path}/old.db")
    j.migrate()
    j.audit.record(_event(PERMIT_C1, "pcp", "2026-11-01T10:00:00Z", delivery_id="d1"))
    assert [r.delivery_id for r in j.audit.disclosures("RGH|MRN1")] == ["d1"]
    j.close()
