"""Every consent decision (disclosure, redacted disclosure, suppression) as a FHIR AuditEvent row.

Answers the accounting-of-disclosures question (42 CFR 2.24/2.25) for a patient
and period. Rows are keyed by the AuditEvent id, which is per delivery and per
decision (streams.consent.audit), so only the same AuditEvent read twice is
recorded once. Each row names its delivery, so the accounting shows what became
of it: delivered, retrying, dead-lettered, suppressed at send time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from carehub.journal.db import Database

#: The table as carehub 0.1.0 created it; columns added since are carehub/journal/migrations.py steps.
SCHEMA = [
    """CREATE TABLE IF NOT EXISTS audit_events (
        audit_id TEXT PRIMARY KEY, patient_key TEXT NOT NULL, recorded TEXT NOT NULL, recipient_id TEXT NOT NULL,
        action TEXT NOT NULL, outcome TEXT NOT NULL, rule TEXT NOT NULL, reason TEXT NOT NULL,
        consent_id TEXT NOT NULL, event_id TEXT NOT NULL, map_version TEXT NOT NULL, resource TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS audit_events_by_patient ON audit_events (patient_key, recorded)",
]
_COLUMNS = ("audit_id, patient_key, recorded, recipient_id, action, outcome, rule, reason, consent_id, event_id, "
            "map_version, resource, delivery_id, phase, attempt")  # fmt: skip
#: What became of the delivery a decision was about (SQL over the journal's delivery tables).
_DELIVERY_STATE = """CASE
    WHEN a.phase = 'attest' THEN 'attested'
    WHEN a.outcome = 'deny' AND a.phase = 'plan' THEN 'not sent'
    WHEN (SELECT state FROM dead_letters d WHERE d.delivery_id = a.delivery_id) = 'parked' THEN 'dead-lettered'
    WHEN (SELECT status FROM delivery_outcomes o WHERE o.delivery_id = a.delivery_id) = 'delivered' THEN 'delivered'
    WHEN (SELECT status FROM delivery_outcomes o WHERE o.delivery_id = a.delivery_id) = 'suppressed'
        THEN 'suppressed at send time'
    WHEN (SELECT status FROM delivery_outcomes o WHERE o.delivery_id = a.delivery_id) = 'failed' THEN 'failed'
    WHEN EXISTS (SELECT 1 FROM delivery_attempts t WHERE t.delivery_id = a.delivery_id) THEN 'retrying'
    ELSE 'pending' END"""
_SELECT = (
    "SELECT a.audit_id, a.patient_key, a.recorded, a.recipient_id, a.action, a.outcome, a.rule, a.reason, "
    f"a.consent_id, a.event_id, a.map_version, a.delivery_id, a.phase, a.attempt, {_DELIVERY_STATE} "
    "FROM audit_events a"
)


@dataclass(frozen=True, slots=True)
class AuditRow:
    audit_id: str
    patient_key: str
    recorded: str
    recipient_id: str
    action: str
    outcome: str
    rule: str
    reason: str
    consent_id: str
    event_id: str
    map_version: str
    delivery_id: str
    #: ``plan`` (the route stage's decision), ``send`` (re-decided just before a send) or ``attest`` (§2.51).
    phase: str
    attempt: int
    #: What became of the delivery: delivered, retrying, dead-lettered, suppressed at send time, not sent, pending.
    delivery: str


def _detail(resource: dict[str, Any], name: str) -> str:
    for entity in resource.get("entity", []):
        for detail in entity.get("detail", []):
            if detail.get("type") == name:
                return str(detail.get("valueString", ""))
    return ""


def _identifier(resource: dict[str, Any], system: str) -> str:
    for entity in resource.get("entity", []):
        identifier = entity.get("what", {}).get("identifier", {})
        if identifier.get("system") == system:
            return str(identifier.get("value", ""))
    return ""


_INSERT = (
    f"INSERT INTO audit_events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (audit_id) DO NOTHING"
)


def _row(resource: dict[str, Any], raw: bytes | None) -> tuple[Any, ...]:
    """The audit_events row of one AuditEvent; ``raw``: its JSON as read, else it is encoded here."""
    consent = next((e["what"]["reference"].split("/", 1)[1] for e in resource.get("entity", [])
                    if e.get("what", {}).get("reference", "").startswith("Consent/")), "")  # fmt: skip
    recipient = resource["agent"][1]["who"]["identifier"]["value"]
    attempt = _detail(resource, "attempt")
    text = (raw if raw is not None else orjson.dumps(resource)).decode()
    return (
        resource["id"], _identifier(resource, "urn:carehub:patient-key"), resource["recorded"], recipient,
        _detail(resource, "action"), _detail(resource, "decision"), _detail(resource, "rule"),
        _detail(resource, "reason"), consent, _identifier(resource, "urn:carehub:event"),
        _detail(resource, "map-version"), text, _detail(resource, "delivery"),
        _detail(resource, "phase") or "plan", int(attempt) if attempt.isdigit() else 0,
    )  # fmt: skip


class AuditStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, resource: dict[str, Any]) -> None:
        """Store one AuditEvent (as built by streams.consent.audit); a repeat is ignored."""
        self.db.execute(_INSERT, _row(resource, None))

    def record_many(self, resources: list[dict[str, Any]], raw: list[bytes] | None = None) -> None:
        """Store a batch in one statement; ``raw``: each resource's JSON as it was read (kept as it is,
        rather than encoded again). A row that cannot be stored fails the whole batch."""
        texts: list[bytes | None] = list(raw) if raw is not None else [None] * len(resources)
        self.db.execute_many(_INSERT, [_row(r, t) for r, t in zip(resources, texts, strict=True)])

    def disclosures(self, patient_key: str, since: str = "", until: str = "9999") -> list[AuditRow]:
        rows = self.db.query(
            f"{_SELECT} WHERE a.patient_key = ? AND a.recorded >= ? AND a.recorded <= ?"
            " ORDER BY a.recorded, a.audit_id",
            (patient_key, since, until),
        )
        return [AuditRow(*row) for row in rows]

    def suppressions(self) -> list[AuditRow]:
        """Every decision that disclosed nothing, oldest first."""
        rows = self.db.query(f"{_SELECT} WHERE a.outcome = 'deny' ORDER BY a.recorded, a.audit_id")
        return [AuditRow(*row) for row in rows]

    def resource(self, audit_id: str) -> dict[str, Any] | None:
        rows = self.db.query("SELECT resource FROM audit_events WHERE audit_id = ?", (audit_id,))
        return orjson.loads(rows[0][0]) if rows else None
