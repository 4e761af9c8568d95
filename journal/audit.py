"""Every consent decision (disclosure, redacted disclosure, suppression) as a FHIR AuditEvent row.

Answers the accounting-of-disclosures question (42 CFR 2.24/2.25) for a patient
and period. Rows are keyed by the AuditEvent id, which is stable for
(event, recipient, action), so a replayed decision is recorded once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from journal.db import Database

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS audit_events (
        audit_id TEXT PRIMARY KEY, patient_key TEXT NOT NULL, recorded TEXT NOT NULL, recipient_id TEXT NOT NULL,
        action TEXT NOT NULL, outcome TEXT NOT NULL, rule TEXT NOT NULL, reason TEXT NOT NULL,
        consent_id TEXT NOT NULL, event_id TEXT NOT NULL, map_version TEXT NOT NULL, resource TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS audit_events_by_patient ON audit_events (patient_key, recorded)",
]


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


class AuditStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def migrate(self) -> None:
        for statement in SCHEMA:
            self.db.execute(statement)

    def record(self, resource: dict[str, Any]) -> None:
        """Store one AuditEvent (as built by streams.consent.audit); a repeat is ignored."""
        consent = next((e["what"]["reference"].split("/", 1)[1] for e in resource.get("entity", [])
                        if e.get("what", {}).get("reference", "").startswith("Consent/")), "")  # fmt: skip
        recipient = resource["agent"][1]["who"]["identifier"]["value"]
        self.db.execute(
            "INSERT INTO audit_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (audit_id) DO NOTHING",
            (
                resource["id"], _identifier(resource, "urn:carehub:patient-key"), resource["recorded"], recipient,
                _detail(resource, "action"), _detail(resource, "decision"), _detail(resource, "rule"),
                _detail(resource, "reason"), consent, _identifier(resource, "urn:carehub:event"),
                _detail(resource, "map-version"), orjson.dumps(resource).decode(),
            ),
        )  # fmt: skip

    def record_many(self, resources: list[dict[str, Any]]) -> None:
        """Store a batch in one transaction."""
        with self.db.transaction():
            for resource in resources:
                self.record(resource)

    def disclosures(self, patient_key: str, since: str = "", until: str = "9999") -> list[AuditRow]:
        rows = self.db.query(
            "SELECT audit_id, patient_key, recorded, recipient_id, action, outcome, rule, reason, consent_id, "
            "event_id, map_version FROM audit_events WHERE patient_key = ? AND recorded >= ? AND recorded <= ? "
            "ORDER BY recorded, audit_id",
            (patient_key, since, until),
        )
        return [AuditRow(*row) for row in rows]

    def suppressions(self) -> list[AuditRow]:
        """Every decision that disclosed nothing, oldest first."""
        rows = self.db.query(
            "SELECT audit_id, patient_key, recorded, recipient_id, action, outcome, rule, reason, consent_id, "
            "event_id, map_version FROM audit_events WHERE outcome = 'deny' ORDER BY recorded, audit_id"
        )
        return [AuditRow(*row) for row in rows]

    def resource(self, audit_id: str) -> dict[str, Any] | None:
        rows = self.db.query("SELECT resource FROM audit_events WHERE audit_id = ?", (audit_id,))
        return orjson.loads(rows[0][0]) if rows else None
