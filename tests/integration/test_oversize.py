"""A stored message whose CareEvent is over the record limit is dead-lettered with its reason; the stream goes on.

The listener refuses such a message before AA (tests/integration/test_ingest_limits.py); this is the
stream's own guarantee for whatever is on hl7v2.inbound already (another ingest version, a lower
limit on the cluster than at ingest): normalize checks its output before sending and parks the input
on the dead-letter topic with stage and reason, instead of crashing the worker at the next flush.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from carehub.core.records import DeadLetter, InboundMessage
from carehub.demo_receivers import DemoRecipient
from carehub.hub import Hub
from tests.conftest import FEED
from tests.integration.conftest import dead_letters, eventually, hub_settings

pytestmark = pytest.mark.integration
ADMIT = (FEED / "05-a01-admit-okafor.hl7").read_text().replace("\n", "\r")


def inbound(control_id: str, name_bytes: int) -> InboundMessage:
    text = ADMIT.replace("|RGH0005|", f"|{control_id}|", 1)
    text = text.replace("OKAFOR^CHIDI", "OKAFOR" + "X" * name_bytes + "^CHIDI", 1)
    return InboundMessage(
        raw_b64=InboundMessage.encode_raw(text.encode()),
        charset="utf-8",
        received_at="2026-11-03T22:00:01Z",
        listener="mllp:test",
        peer="127.0.0.1",
        control_id=control_id,
        message_type="ADT",
        trigger_event="A01",
        version="2.5.1",
        sending_application="EPICADT",
        sending_facility="RGH",
        patient_key="RGH|MRN100871",
    )


async def test_an_event_over_the_record_limit_is_dead_lettered_and_the_next_one_delivered(
    broker: str, config_dir: Path, recipients: dict[str, DemoRecipient], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="carehub.streams")
    hub = Hub(hub_settings(config_dir, broker), roles=("streams",))
    await hub.start()
    try:
        big = inbound("BIG-600K", 600_000)
        assert len(big.to_json()) < hub.settings.kafka.max_record_bytes, "the inbound record itself fits"
        producer = AIOKafkaProducer(bootstrap_servers=hub.bootstrap, acks="all", max_request_size=2 << 20)
        await producer.start()
        try:
            bigs = [inbound(f"BIG-600K-{n}", 600_000) for n in range(4)]
            for record in (*bigs, inbound("AFTER-BIG", 0)):
                await producer.send_and_wait(hub.topics.hl7v2_inbound, record.to_json(), key=b"RGH|MRN100871")
        finally:
            await producer.stop()
        pcp = recipients["pcp-riverside"]
        await eventually(lambda: len(pcp.received) >= 1, timeout_s=30)
        assert hub.metrics.get("stage_failed", stage="normalize") == 4
        lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("normalize failed")]
        assert len(lines) == 1 and "error=record-too-large" in lines[0], "one line per cause per 10 s"
        letters: list[DeadLetter] = []
        for _ in range(10):
            letters = await dead_letters(hub.bootstrap, hub.topics.dead_letters)
            if len(letters) >= 4:
                break
            await asyncio.sleep(0.5)
        assert len(letters) == 4, letters
        letter = letters[0]
        assert (letter.stage, letter.error_code) == ("normalize", "record-too-large")
        assert "CareEvent of" in letter.reason and "-byte limit" in letter.reason, letter.reason
        assert letter.source_topic == hub.topics.hl7v2_inbound and letter.source_offset >= 0
        assert "omitted" in letter.record, "a copy too large for a record is left at its offset"
        assert [r.event_code for r in pcp.received][:1] == ["notification-admit"], "the stream went on"
    finally:
        await hub.stop()
