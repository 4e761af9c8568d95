"""Size limits before AA: an accepted message can always be carried through to care.events.

The listener takes blocks up to mllp.max_message_bytes (1 MiB), but records
are limited to kafka.max_record_bytes (Kafka's 1 MB default). A message whose
inbound record or CareEvent would not fit is refused with AR before it is
stored; one that gets AA reaches care.events. Never AA, then lost.
"""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer

from carehub.connectors.mllp import MLLPClient, ack_code
from carehub.core.records import CareEvent
from carehub.hub import Hub
from tests.conftest import FEED
from tests.integration.test_ingest_durability import _read_inbound

pytestmark = pytest.mark.integration


def with_long_name(control_id: str, name_bytes: int) -> bytes:
    text = (FEED / "05-a01-admit-okafor.hl7").read_text().replace("\n", "\r")
    text = text.replace("|RGH0005|", f"|{control_id}|", 1)
    text = text.replace("OKAFOR^CHIDI", "OKAFOR" + "X" * name_bytes + "^CHIDI", 1)  # PID-5 only
    return text.encode()


def largest_frame(control_id: str, size: int) -> bytes:
    """A valid A01 padded with an NTE to exactly ``size`` bytes."""
    base = with_long_name(control_id, 0)
    pad = size - len(base) - len(b"NTE|1||\r")
    return base + b"NTE|1||" + b"N" * pad + b"\r"


async def _events_for(bootstrap: str, topic: str, control_ids: set[str], timeout_ms: int = 30000) -> set[str]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        fetch_max_bytes=16 << 20,
        max_partition_fetch_bytes=16 << 20,
    )
    await consumer.start()
    found: set[str] = set()
    try:
        for _ in range(timeout_ms // 1000):
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    event = CareEvent.from_json(record.value)
                    found.add(str(event.source.get("control_id", "")))
            if control_ids <= found:
                break
    finally:
        await consumer.stop()
    return found


async def test_largest_messages_are_refused_before_aa_or_carried_through(hub: Hub) -> None:
    limit = hub.settings.kafka.max_record_bytes
    largest = largest_frame("BIG-MAX", hub.settings.mllp.max_message_bytes)
    assert len(largest) == hub.settings.mllp.max_message_bytes, "the largest block the listener takes"
    client = MLLPClient("127.0.0.1", hub.mllp_port, timeout_s=60)
    try:
        refused = await client.send(largest)
        assert ack_code(refused) == "AR", refused[:300]
        assert b"MSA|AR|BIG-MAX|" in refused and b"record" in refused
        # The case: a 600 KB PID-5 fits the inbound record but converts to a 1.2 MB event.
        expanding = await client.send(with_long_name("BIG-600K", 600_000))
        assert ack_code(expanding) == "AR" and b"event" in expanding, expanding[:300]
        carried = await client.send(with_long_name("BIG-300K", 300_000))
        assert ack_code(carried) == "AA", carried[:300]
    finally:
        await client.close()
    stored = {m.control_id for _, m in await _read_inbound(hub.bootstrap, hub.topics.hl7v2_inbound, 1)}
    assert stored == {"BIG-300K"}, "refused messages are not stored"
    found = await _events_for(hub.bootstrap, hub.topics.care_events, {"BIG-300K"})
    assert "BIG-300K" in found, f"the AA'd message reached care.events (limit {limit})"
