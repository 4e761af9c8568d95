"""The message journal: every inbound message (MLLP and FHIR) with its receipt facts, searchable.

Written from the stream side (carehub.message_journal consumes the inbound
topics in batches), never on the MLLP ACK path. One row per topic record,
keyed by topic, partition and offset, so a redelivered batch is recorded once.
The raw payload is kept for the PHI role's views; searches return the receipt
facts only. Refused messages (AE/AR, CE/CR) come from the ``inbound.refused`` topic
with their ACK code, error code and the reason the sender was given (journal
migration 9 added ``error_code`` and ``reason``); their status is ``refused``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from carehub.journal.db import Database

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS messages (
        topic TEXT NOT NULL, partition_no INTEGER NOT NULL, topic_offset BIGINT NOT NULL, source TEXT NOT NULL,
        control_id TEXT NOT NULL, message_type TEXT NOT NULL, sending_facility TEXT NOT NULL,
        patient_key TEXT NOT NULL, event_id TEXT NOT NULL, received_at TEXT NOT NULL, journaled_at TEXT NOT NULL,
        ack_code TEXT NOT NULL, listener TEXT NOT NULL, raw TEXT NOT NULL,
        PRIMARY KEY (topic, partition_no, topic_offset))""",
    "CREATE INDEX IF NOT EXISTS messages_by_control_id ON messages (control_id)",
    "CREATE INDEX IF NOT EXISTS messages_by_patient ON messages (patient_key, received_at)",
    "CREATE INDEX IF NOT EXISTS messages_by_facility ON messages (sending_facility, received_at)",
    "CREATE INDEX IF NOT EXISTS messages_by_time ON messages (received_at)",
    "CREATE INDEX IF NOT EXISTS messages_by_event ON messages (event_id)",
    "CREATE INDEX IF NOT EXISTS delivery_outcomes_by_event ON delivery_outcomes (event_id)",
]
#: Migration 9: why a refused message was refused (empty for accepted ones).
REFUSAL_COLUMNS = (("error_code", "TEXT NOT NULL DEFAULT ''"), ("reason", "TEXT NOT NULL DEFAULT ''"))
_FIELDS = ("topic, partition_no, topic_offset, source, control_id, message_type, sending_facility, patient_key, "
           "event_id, received_at, journaled_at, ack_code, listener, error_code, reason")  # fmt: skip
#: ACK codes of a refusal (original and enhanced mode).
REFUSED = ("AE", "AR", "CE", "CR")
#: What became of a message's deliveries, worst first (SQL over delivery_outcomes and dead_letters).
_STATUS = """CASE
    WHEN m.error_code <> '' THEN 'refused'
    WHEN m.event_id = '' THEN 'received'
    WHEN EXISTS (SELECT 1 FROM delivery_outcomes o JOIN dead_letters d ON d.delivery_id = o.delivery_id
                 WHERE o.event_id = m.event_id AND d.state = 'parked') THEN 'dead-lettered'
    WHEN EXISTS (SELECT 1 FROM delivery_outcomes o WHERE o.event_id = m.event_id AND o.status = 'failed')
        THEN 'failed'
    WHEN EXISTS (SELECT 1 FROM delivery_outcomes o WHERE o.event_id = m.event_id AND o.status = 'suppressed')
        THEN 'suppressed'
    WHEN EXISTS (SELECT 1 FROM delivery_outcomes o WHERE o.event_id = m.event_id AND o.status = 'delivered')
        THEN 'delivered'
    ELSE 'routed or pending' END"""
STATUSES = ("refused", "received", "dead-lettered", "failed", "suppressed", "delivered", "routed or pending")
PAGE_SIZE = 50


@dataclass(frozen=True, slots=True)
class MessageRow:
    topic: str
    partition_no: int
    topic_offset: int
    source: str
    control_id: str
    message_type: str
    sending_facility: str
    patient_key: str
    event_id: str
    received_at: str
    journaled_at: str
    ack_code: str
    listener: str
    error_code: str = ""
    reason: str = ""
    status: str = ""

    @property
    def ref(self) -> str:
        """The row's id in console URLs: ``topic:partition:offset``."""
        return f"{self.topic}:{self.partition_no}:{self.topic_offset}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ref": self.ref}


@dataclass(frozen=True, slots=True)
class MessageQuery:
    """A search: each non-empty field narrows it; ``text`` matches control id, patient key or event id."""

    text: str = ""
    control_id: str = ""
    message_type: str = ""
    sending_facility: str = ""
    patient_key: str = ""
    ack_code: str = ""
    status: str = ""
    since: str = ""
    until: str = ""
    page: int = 1


class MessageStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record_many(self, rows: list[tuple[MessageRow, str]]) -> None:
        """Store a batch (row, raw payload) in one statement; a record already journaled is skipped."""
        self.db.execute_many(
            f"INSERT INTO messages ({_FIELDS}, raw) VALUES ({', '.join('?' * 16)})"
            " ON CONFLICT (topic, partition_no, topic_offset) DO NOTHING",
            [(*asdict(row).values(),)[:15] + (raw,) for row, raw in rows],
        )

    def search(self, q: MessageQuery) -> tuple[list[MessageRow], bool]:
        """One page of matches, newest first, and whether another page follows."""
        where, params = ["1 = 1"], []
        for column in ("control_id", "message_type", "sending_facility", "patient_key", "ack_code"):
            value = getattr(q, column)
            if value:
                where.append(f"m.{column} = ?")
                params.append(value)
        if q.text:
            where.append("(m.control_id = ? OR m.patient_key = ? OR m.event_id = ?)")
            params += [q.text, q.text, q.text]
        if q.since:
            where.append("m.received_at >= ?")
            params.append(q.since)
        if q.until:
            where.append("m.received_at <= ?")
            params.append(q.until)
        if q.status:
            where.append(f"({_STATUS}) = ?")
            params.append(q.status)
        page = max(1, q.page)
        rows = self.db.query(
            f"SELECT {', '.join('m.' + f.strip() for f in _FIELDS.split(','))}, {_STATUS} FROM messages m"
            f" WHERE {' AND '.join(where)} ORDER BY m.received_at DESC, m.topic_offset DESC LIMIT ? OFFSET ?",
            (*params, PAGE_SIZE + 1, (page - 1) * PAGE_SIZE),
        )
        found = [MessageRow(*row) for row in rows]
        return found[:PAGE_SIZE], len(found) > PAGE_SIZE

    def get(self, ref: str) -> MessageRow | None:
        topic, _, rest = ref.rpartition(":")
        topic, _, partition = topic.rpartition(":")
        if not (partition.isdigit() and rest.isdigit()):
            return None
        rows = self.db.query(
            f"SELECT {', '.join('m.' + f.strip() for f in _FIELDS.split(','))}, {_STATUS} FROM messages m"
            " WHERE m.topic = ? AND m.partition_no = ? AND m.topic_offset = ?",
            (topic, int(partition), int(rest)),
        )
        return MessageRow(*rows[0]) if rows else None

    def raw(self, ref: str) -> str:
        """The payload as received (PHI: callers check the role and audit the view)."""
        row = self.get(ref)
        if row is None:
            return ""
        rows = self.db.query(
            "SELECT raw FROM messages WHERE topic = ? AND partition_no = ? AND topic_offset = ?",
            (row.topic, row.partition_no, row.topic_offset),
        )
        return str(rows[0][0]) if rows else ""

    def counts(self, since: str) -> list[tuple[str, str, int]]:
        """(sending facility, ACK code, count) of messages received since ``since``."""
        rows = self.db.query(
            "SELECT sending_facility, ack_code, COUNT(*) FROM messages WHERE received_at >= ?"
            " GROUP BY sending_facility, ack_code ORDER BY sending_facility, ack_code",
            (since,),
        )
        return [(str(a), str(b), int(c)) for a, b, c in rows]

    def received_times(self, since: str) -> list[str]:
        """Receipt times since ``since`` (the dashboard's throughput chart buckets them)."""
        return [str(r[0]) for r in self.db.query("SELECT received_at FROM messages WHERE received_at >= ?", (since,))]
