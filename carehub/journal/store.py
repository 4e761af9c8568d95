"""Delivery attempts, outcomes, dead letters and per-(recipient, patient) order state.

The order state is what keeps one patient's deliveries to one recipient in
order while one of them waits on a retry topic: the waiting delivery *holds*
the pair, and later deliveries for the pair are *queued* here, durably, until
the holder is delivered or dead-lettered. It lives in the journal (not in
process memory) so any worker that takes over the partition continues it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from carehub.core.clock import now_iso
from carehub.core.records import Delivery, DeliveryOutcome
from carehub.journal.audit import AuditStore
from carehub.journal.carefacts import CareFactStore
from carehub.journal.careplans import CarePlanStore
from carehub.journal.db import Database
from carehub.journal.logistics import LogisticsStore
from carehub.journal.messages import MessageStore
from carehub.journal.pauses import PauseStore
from carehub.journal.security import SecurityEventStore
from carehub.journal.tasks import TaskStore

SCHEMA = [
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
]
#: Migration 4: a merge (A40 ...) links the retired patient key to the one that survives it
#: (its Tasks and consents follow the survivor).
PATIENT_LINKS = [
    """CREATE TABLE IF NOT EXISTS patient_links (
        retired_key TEXT PRIMARY KEY, survivor_key TEXT NOT NULL, linked_at TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS patient_links_by_survivor ON patient_links (survivor_key)",
]

#: Outcome states after which a delivery is finished (a replay reopens it). ``suppressed``: the
#: send-time consent gate stopped it (a revocation or expiry after it was planned).
#: ``not-needed``: a correction whose recipient never received the original (or whose Task was already finished).
FINAL = ("delivered", "failed", "suppressed", "not-needed")


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    delivery_id: str
    recipient_id: str
    error_code: str
    reason: str
    parked_at: str
    state: str
    delivery: Delivery

    def summary(self) -> dict[str, Any]:
        """What an admin sees: ids, codes and reasons, never the payload."""
        d = self.delivery
        return {
            "delivery_id": self.delivery_id,
            "idempotency_key": d.idempotency_key,
            "recipient_id": self.recipient_id,
            "action": d.action,
            "channel": d.channel,
            "error_code": self.error_code,
            "reason": self.reason,
            "parked_at": self.parked_at,
            "state": self.state,
        }


class Journal:
    def __init__(self, url: str) -> None:
        self.db = Database(url)
        self.tasks = TaskStore(self.db)
        self.audit = AuditStore(self.db)
        self.security = SecurityEventStore(self.db)
        self.messages = MessageStore(self.db)
        self.pauses = PauseStore(self.db)
        self.facts = CareFactStore(self.db)
        self.logistics = LogisticsStore(self.db)
        self.careplans = CarePlanStore(self.db)

    @property
    def dialect(self) -> str:
        return self.db.dialect

    def migrate(self) -> None:
        """Apply the journal migrations it has not had (carehub/journal/migrations.py)."""
        from carehub.journal.migrations import upgrade  # migrations imports this module's SCHEMA

        upgrade(self.db)

    def close(self) -> None:
        self.db.close()

    # attempts and outcomes -------------------------------------------------
    def record_attempt(self, d: Delivery, attempt: int, result: str, status_code: int | None, detail: str) -> None:
        self.db.execute(
            "INSERT INTO delivery_attempts (delivery_id, idempotency_key, recipient_id, action, channel, attempt,"
            " result, status_code, detail, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                d.delivery_id,
                d.idempotency_key,
                d.recipient_id,
                d.action,
                d.channel,
                attempt,
                result,
                status_code,
                detail,
                now_iso(),
            ),
        )

    def record_delivered(
        self, d: Delivery, attempt: int, result: str, status_code: int | None, detail: str, o: DeliveryOutcome
    ) -> None:
        """The successful attempt and the outcome in one transaction (one round trip on the hot path)."""
        with self.db.transaction():
            self.record_attempt(d, attempt, result, status_code, detail)
            self.record_outcome(o)

    def record_outcome(self, o: DeliveryOutcome) -> None:
        self.db.execute(
            "INSERT INTO delivery_outcomes (delivery_id, idempotency_key, event_id, recipient_id, action, status,"
            " attempts, reason, http_status, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (delivery_id) DO UPDATE SET status = excluded.status, attempts = excluded.attempts,"
            " reason = excluded.reason, http_status = excluded.http_status, finished_at = excluded.finished_at",
            (
                o.delivery_id,
                o.idempotency_key,
                o.event_id,
                o.recipient_id,
                o.action,
                o.status,
                o.attempts,
                o.reason,
                o.http_status,
                o.finished_at,
            ),
        )

    def outcome_status(self, delivery_id: str) -> str | None:
        rows = self.db.query("SELECT status FROM delivery_outcomes WHERE delivery_id = ?", (delivery_id,))
        return str(rows[0][0]) if rows else None

    def is_finished(self, delivery_id: str) -> bool:
        return self.outcome_status(delivery_id) in FINAL

    def final_outcome(self, delivery_id: str) -> DeliveryOutcome | None:
        """The journaled outcome of a finished delivery (to publish again after a crash), else None."""
        rows = self.db.query(
            "SELECT idempotency_key, event_id, recipient_id, action, status, attempts, reason, finished_at,"
            " http_status FROM delivery_outcomes WHERE delivery_id = ?",
            (delivery_id,),
        )
        if not rows or rows[0][4] not in FINAL:
            return None
        key, event_id, recipient_id, action, status, attempts, reason, finished_at, http_status = rows[0]
        return DeliveryOutcome(
            delivery_id=delivery_id, idempotency_key=str(key), event_id=str(event_id), recipient_id=str(recipient_id),
            action=str(action), status=str(status), attempts=int(attempts), reason=str(reason or ""),
            finished_at=str(finished_at), http_status=int(http_status) if http_status is not None else None,
        )  # fmt: skip

    def attempts(self, delivery_id: str) -> list[dict[str, Any]]:
        rows = self.db.query(
            "SELECT attempt, result, status_code, detail, at, idempotency_key FROM delivery_attempts"
            " WHERE delivery_id = ? ORDER BY id",
            (delivery_id,),
        )
        keys = ("attempt", "result", "status_code", "detail", "at", "idempotency_key")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def outcome_counts(self) -> dict[str, int]:
        rows = self.db.query("SELECT status, COUNT(*) FROM delivery_outcomes GROUP BY status")
        return {str(status): int(count) for status, count in rows}

    # merged patients ---------------------------------------------------------
    def link_patients(self, retired: list[str], survivor: str) -> None:
        """Record a merge; the retired patients' Tasks and care facts follow the survivor."""
        with self.db.transaction():
            for old in retired:
                self.db.execute(
                    "INSERT INTO patient_links (retired_key, survivor_key, linked_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (retired_key) DO UPDATE SET survivor_key = excluded.survivor_key,"
                    " linked_at = excluded.linked_at",
                    (old, survivor, now_iso()),
                )
                self.db.execute("UPDATE patient_links SET survivor_key = ? WHERE survivor_key = ?", (survivor, old))
        self.tasks.reassign(retired, survivor)
        self.facts.reassign(retired, survivor)

    def retired_into(self, survivor: str) -> list[str]:
        """The patient keys merged into ``survivor`` (their consents apply to it)."""
        rows = self.db.query("SELECT retired_key FROM patient_links WHERE survivor_key = ?", (survivor,))
        return [str(row[0]) for row in rows]

    def retired_into_each(self, survivors: list[str]) -> dict[str, list[str]]:
        """``retired_into`` of each survivor in one query (every survivor is a key, most with no links)."""
        found: dict[str, list[str]] = {key: [] for key in survivors}
        for start in range(0, len(survivors), 500):
            chunk = survivors[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            rows = self.db.query(
                f"SELECT survivor_key, retired_key FROM patient_links WHERE survivor_key IN ({marks})", chunk
            )
            for survivor, retired in rows:
                found[str(survivor)].append(str(retired))
        return found

    # per-(recipient, patient) order ----------------------------------------
    def holder(self, recipient_id: str, patient_key: str) -> str | None:
        rows = self.db.query(
            "SELECT delivery_id FROM delivery_holds WHERE recipient_id = ? AND patient_key = ?",
            (recipient_id, patient_key),
        )
        return str(rows[0][0]) if rows else None

    def hold(self, d: Delivery) -> None:
        """``d`` waits on a retry topic: later deliveries for its pair queue behind it."""
        self.db.execute(
            "INSERT INTO delivery_holds (recipient_id, patient_key, delivery_id, since) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (recipient_id, patient_key) DO UPDATE SET delivery_id = excluded.delivery_id,"
            " since = excluded.since",
            (d.recipient_id, d.patient_key, d.delivery_id, now_iso()),
        )

    def admit(self, d: Delivery) -> str:
        """One query for a fresh delivery: ``"done"`` when it already has a final outcome (a redelivery
        after a crash), ``"own"`` when ``d`` itself holds its pair (a crash came after it went to retry),
        ``"queued"`` when it was queued behind another holder, ``"go"`` otherwise."""
        rows = self.db.query(
            "SELECT (SELECT status FROM delivery_outcomes WHERE delivery_id = ?),"
            " (SELECT delivery_id FROM delivery_holds WHERE recipient_id = ? AND patient_key = ?)",
            (d.delivery_id, d.recipient_id, d.patient_key),
        )
        status, holder = rows[0]
        if status in FINAL:
            return "done"
        if holder is None:
            return "go"
        if holder == d.delivery_id:
            return "own"
        return "queued" if self.enqueue_if_held(d) else "go"

    def enqueue_if_held(self, d: Delivery) -> bool:
        """Queue ``d`` behind the pair's holder; False when nothing else holds the pair."""
        with self.db.transaction():
            holder = self.holder(d.recipient_id, d.patient_key)
            if holder is None or holder == d.delivery_id:
                return False
            self.db.execute(
                "INSERT INTO delivery_queue (recipient_id, patient_key, delivery_id, record, queued_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (delivery_id) DO NOTHING",
                (d.recipient_id, d.patient_key, d.delivery_id, d.to_json().decode(), now_iso()),
            )
            return True

    def next_queued(self, recipient_id: str, patient_key: str) -> Delivery | None:
        rows = self.db.query(
            "SELECT record FROM delivery_queue WHERE recipient_id = ? AND patient_key = ? ORDER BY seq LIMIT 1",
            (recipient_id, patient_key),
        )
        return Delivery.from_json(rows[0][0]) if rows else None

    def dequeue(self, delivery_id: str) -> None:
        self.db.execute("DELETE FROM delivery_queue WHERE delivery_id = ?", (delivery_id,))

    def release_if_idle(self, recipient_id: str, patient_key: str, delivery_id: str) -> bool:
        """Drop ``delivery_id``'s hold when nothing is queued for the pair; True when released."""
        with self.db.transaction():
            if self.next_queued(recipient_id, patient_key) is not None:
                return False
            self.db.execute(
                "DELETE FROM delivery_holds WHERE recipient_id = ? AND patient_key = ? AND delivery_id = ?",
                (recipient_id, patient_key, delivery_id),
            )
            return True

    def queued_count(self) -> int:
        return int(self.db.query("SELECT COUNT(*) FROM delivery_queue")[0][0])

    # dead letters ------------------------------------------------------------
    def park(self, d: Delivery, error_code: str, reason: str) -> None:
        self.db.execute(
            "INSERT INTO dead_letters (delivery_id, recipient_id, error_code, reason, record, parked_at, state)"
            " VALUES (?, ?, ?, ?, ?, ?, 'parked') ON CONFLICT (delivery_id) DO UPDATE SET"
            " error_code = excluded.error_code, reason = excluded.reason, record = excluded.record,"
            " parked_at = excluded.parked_at, state = 'parked', replayed_at = NULL",
            (d.delivery_id, d.recipient_id, error_code, reason, d.to_json().decode(), now_iso()),
        )

    def dead_letters(self, state: str | None = None) -> list[DeadLetterRow]:
        where, params = (" WHERE state = ?", (state,)) if state else ("", ())
        rows = self.db.query(
            "SELECT delivery_id, recipient_id, error_code, reason, parked_at, state, record FROM dead_letters"
            f"{where} ORDER BY parked_at, delivery_id",
            params,
        )
        return [
            DeadLetterRow(row[0], row[1], row[2], row[3], row[4], row[5], Delivery.from_json(row[6])) for row in rows
        ]

    def purge_dead_letters(self, parked_before: str) -> int:
        """Delete dead letters (and their payloads) parked before ``parked_before`` (ISO time); how many."""
        return self.db.execute("DELETE FROM dead_letters WHERE parked_at < ?", (parked_before,))

    def mark_replayed(self, delivery_id: str) -> None:
        """Reopen a dead-lettered delivery so its replay is attempted, not skipped as finished."""
        with self.db.transaction():
            self.db.execute(
                "UPDATE dead_letters SET state = 'replayed', replayed_at = ? WHERE delivery_id = ?",
                (now_iso(), delivery_id),
            )
            self.db.execute("UPDATE delivery_outcomes SET status = 'replayed' WHERE delivery_id = ?", (delivery_id,))


def open_journal(url: str) -> Journal:
    """Open (and create or upgrade the tables of) the journal at ``url``."""
    journal = Journal(url)
    journal.migrate()
    return journal
