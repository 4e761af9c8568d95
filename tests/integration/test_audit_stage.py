"""The audit stage never stalls on one AuditEvent the trail cannot hold: it is dead-lettered, the rest stored."""

from __future__ import annotations

import base64

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from carehub.hub import Hub
from carehub.journal import open_journal
from carehub.streams.consent.audit import audit_event
from carehub.streams.consent.decide import PERMIT, ConsentDecision, Disclosure
from tests.integration.conftest import dead_letters, eventually

pytestmark = pytest.mark.integration


async def test_an_audit_event_missing_its_fields_is_dead_lettered_and_the_rest_of_its_batch_is_stored(
    hub: Hub, broker: str
) -> None:
    good = [
        audit_event(
            ConsentDecision(PERMIT, "not-part2", "no 42 CFR Part 2 data"),
            Disclosure(f"pcp-{n}", "pcp", "notify", "TREAT"),
            event_id=f"audit-stage-{n}",
            patient_key="RGH|AUDIT1",
            recorded="2026-12-02T07:00:00Z",
            map_version="v1",
            delivery_id=f"audit-stage-delivery-{n}",
        )  # fmt: skip
        for n in range(3)
    ]
    broken = {"resourceType": "AuditEvent", "id": "no-agent-no-recorded"}
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all", linger_ms=50)  # one batch: all four
    await producer.start()
    try:
        for resource in (good[0], broken, good[1], good[2]):
            await producer.send(hub.topics.audit_events, orjson.dumps(resource), key=b"RGH|AUDIT1")
        await producer.flush()
    finally:
        await producer.stop()
    journal = open_journal(hub.settings.database_url)  # the hub's journal, read as an operator's tool would

    def stored() -> set[str]:
        return {str(r.audit_id) for r in journal.audit.disclosures("RGH|AUDIT1")}

    try:
        await eventually(lambda: len(stored()) == 3, timeout_s=30)
        assert stored() == {str(resource["id"]) for resource in good}
    finally:
        journal.close()
    letters = [d for d in await dead_letters(broker, hub.topics.dead_letters) if d.stage == "audit"]
    assert len(letters) == 1, "the broken AuditEvent is parked with its stage and reason"
    [letter] = letters
    assert letter.source_topic == hub.topics.audit_events and letter.reason == "KeyError"
    assert b"no-agent-no-recorded" in base64.b64decode(str(letter.record["value_b64"]))
