"""Refused HTTP requests as FHIR AuditEvents (DICOM 110113 Security Alert).

Written by the HTTP access check (adapters.httpauth) for every 401 and 403:
method, route template, reason, principal and peer address; never ids from
the URL, the query or the body.
"""

from __future__ import annotations

from typing import Any

import orjson

from carehub.journal.db import Database

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS security_events (
        event_id TEXT PRIMARY KEY, recorded TEXT NOT NULL, status INTEGER NOT NULL, code TEXT NOT NULL,
        route TEXT NOT NULL, principal TEXT NOT NULL, peer TEXT NOT NULL, resource TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS security_events_by_time ON security_events (recorded)",
]


def _detail(resource: dict[str, Any], name: str) -> str:
    for entity in resource.get("entity", []):
        for detail in entity.get("detail", []):
            if detail.get("type") == name:
                return str(detail.get("valueString", ""))
    return ""


class SecurityEventStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, resource: dict[str, Any]) -> None:
        agent = resource["agent"][0]
        identifier = agent.get("who", {}).get("identifier", {})
        principal = f"{identifier['system']}/{identifier['value']}" if identifier else ""
        self.db.execute(
            "INSERT INTO security_events VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
            (
                resource["id"],
                resource["recorded"],
                int(_detail(resource, "http-status") or 0),
                _detail(resource, "code"),
                resource["entity"][0]["what"]["display"],
                principal,
                agent.get("network", {}).get("address", ""),
                orjson.dumps(resource).decode(),
            ),
        )

    def events(self, since: str = "") -> list[dict[str, Any]]:
        rows = self.db.query(
            "SELECT resource FROM security_events WHERE recorded >= ? ORDER BY recorded, event_id", (since,)
        )
        return [dict(orjson.loads(row[0])) for row in rows]
