"""The message journal on SQLite and PostgreSQL: search by every field, time range, status, pages, indexes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from carehub.core.records import Delivery, DeliveryOutcome
from carehub.journal import Journal
from carehub.journal.messages import PAGE_SIZE, MessageQuery, MessageRow

pytestmark = pytest.mark.integration


def _row(offset: int, **fields: object) -> MessageRow:
    base = MessageRow(
        "t.hl7v2.inbound", 0, offset, "mllp", f"CTL{offset:04d}", "ADT^A01", "RGH", f"RGH|MRN{offset % 3}",
        f"event-{offset}", f"2026-11-05T10:{offset % 60:02d}:00.000Z", "2026-11-05T11:00:00.000Z", "AA", "mllp:test",
    )  # fmt: skip
    return replace(base, **fields)  # type: ignore[arg-type]


def _delivery(delivery_id: str, event_id: str) -> Delivery:
    return Delivery(
        delivery_id=delivery_id, idempotency_key=delivery_id, event_id=event_id, patient_key="RGH|MRN1",
        recipient_id="pcp-riverside", action="notify", channel="webhook", endpoint="http://x", content_type="x",
        payload={}, rule_id="r", map_version="v",
    )  # fmt: skip


def test_search_by_fields_time_range_status_and_pages(journal: Journal) -> None:
    rows = [(_row(i), f"MSH|^~\\&|raw {i}") for i in range(1, 61)]
    rows.append((_row(61, sending_facility="STM", message_type="ADT^A03", ack_code="AA"), "raw 61"))
    journal.messages.record_many(rows)
    journal.messages.record_many(rows[:3])  # a re-read batch is recorded once
    search = journal.messages.search

    found, more = search(MessageQuery(text="CTL0007"))
    assert [r.control_id for r in found] == ["CTL0007"] and not more
    assert found[0].ref == "t.hl7v2.inbound:0:7" and found[0].topic_offset == 7
    assert journal.messages.get(found[0].ref) == found[0]
    assert journal.messages.raw(found[0].ref) == "MSH|^~\\&|raw 7"
    assert [r.control_id for r in search(MessageQuery(sending_facility="STM"))[0]] == ["CTL0061"]
    assert [r.control_id for r in search(MessageQuery(message_type="ADT^A03"))[0]] == ["CTL0061"]
    assert len(search(MessageQuery(patient_key="RGH|MRN1"))[0]) == 21
    assert len(search(MessageQuery(text="RGH|MRN1"))[0]) == 21
    window = search(MessageQuery(since="2026-11-05T10:10:00", until="2026-11-05T10:12:59"))[0]
    assert sorted(r.control_id for r in window) == ["CTL0010", "CTL0011", "CTL0012"]

    first, more = search(MessageQuery())
    assert len(first) == PAGE_SIZE and more
    second, more = search(MessageQuery(page=2))
    assert len(second) == 61 - PAGE_SIZE and not more
    assert not {r.ref for r in first} & {r.ref for r in second}

    delivered = DeliveryOutcome("d5", "d5", "event-5", "pcp-riverside", "notify", "delivered", 1, "", "2026-11-05", 200)
    journal.record_outcome(delivered)
    journal.record_outcome(replace(delivered, delivery_id="d6", event_id="event-6", status="failed"))
    journal.record_outcome(replace(delivered, delivery_id="d7", event_id="event-7", status="failed"))
    journal.park(_delivery("d7", "event-7"), "unreachable", "connection refused")
    assert [r.control_id for r in search(MessageQuery(status="delivered"))[0]] == ["CTL0005"]
    assert [r.control_id for r in search(MessageQuery(status="failed"))[0]] == ["CTL0006"]
    assert [r.control_id for r in search(MessageQuery(status="dead-lettered"))[0]] == ["CTL0007"]
    assert search(MessageQuery(status="dead-lettered", text="CTL0007"))[0][0].status == "dead-lettered"


def test_the_searched_columns_are_indexed(journal: Journal) -> None:
    if journal.dialect == "sqlite":
        names = {str(r[1]) for r in journal.db.query("PRAGMA index_list(messages)")}
    else:
        names = {str(r[0]) for r in journal.db.query("SELECT indexname FROM pg_indexes WHERE tablename = 'messages'")}
    expected = {"messages_by_control_id", "messages_by_patient", "messages_by_facility", "messages_by_time",
                "messages_by_event"}  # fmt: skip
    assert expected <= names, names
