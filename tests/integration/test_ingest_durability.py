"""Durable before acknowledged: no AA unless Kafka confirmed the write."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from carehub.broker import EmbeddedBroker
from carehub.hub import Hub
from connectors.mllp import MLLPClient, ack_code
from core.records import InboundMessage
from tests.conftest import FEED
from tests.integration.conftest import hub_settings

pytestmark = pytest.mark.integration


async def _read_inbound(bootstrap: str, topic: str, expected: int) -> list[tuple[bytes, InboundMessage]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    found: list[tuple[bytes, InboundMessage]] = []
    try:
        while len(found) < expected:
            batch = await consumer.getmany(timeout_ms=5000)
            if not batch:
                break
            for records in batch.values():
                found.extend((r.key, InboundMessage.from_json(r.value)) for r in records)
    finally:
        await consumer.stop()
    return found


async def test_aa_means_the_raw_bytes_and_receipt_are_on_the_inbound_topic(broker: str, config_dir: Path) -> None:
    hub = Hub(hub_settings(config_dir, broker), roles=("ingest",))
    await hub.start()
    payload = (FEED / "05-a01-admit-okafor.hl7").read_bytes()
    client = MLLPClient("127.0.0.1", hub.mllp_port)
    try:
        assert ack_code(await client.send(payload)) == "AA"
    finally:
        await client.close()
        await hub.stop()
    [(key, stored)] = await _read_inbound(broker, hub.topics.hl7v2_inbound, 1)
    assert key == b"RGH|MRN100871", "keyed by PID-3 authority and identifier, not MSH-10"
    assert stored.raw == payload and base64.b64decode(stored.raw_b64) == payload
    assert (stored.control_id, stored.message_type, stored.trigger_event) == ("RGH0005", "ADT", "A01")
    assert stored.sending_facility == "RGH" and stored.received_at.endswith("Z")


async def test_broker_down_means_ae_never_aa(config_dir: Path) -> None:
    own = EmbeddedBroker()
    own.start()
    hub = Hub(hub_settings(config_dir, own.bootstrap, produce_timeout_s=2.0), roles=("ingest",))
    await hub.start()
    client = MLLPClient("127.0.0.1", hub.mllp_port, timeout_s=30)
    try:
        assert ack_code(await client.send((FEED / "02-a01-admit-rivera.hl7").read_bytes())) == "AA"
        own.stop()
        ack = await client.send((FEED / "03-a02-transfer-rivera.hl7").read_bytes())
        assert ack_code(ack) == "AE", ack
        text = ack.decode()
        assert "\rERR|" in text and "207" in text and "MSA|AE|RGH0003" in text
        again = await client.send((FEED / "04-a03-discharge-rivera.hl7").read_bytes())
        assert ack_code(again) == "AE", "the listener keeps serving and keeps refusing AA"
    finally:
        await client.close()
        await hub.stop()
        own.stop()
