"""A rolling upgrade on the real stream path: one normalize consumer, on a real broker, reads a record as the
previous release wrote it and one from a newer minor release (extra fields), and dead-letters one of a newer
major with a reason that names both versions; the stream goes on."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from carehub.adapters.hl7.header import read_header
from carehub.adapters.hl7.tokenizer import parse_message
from carehub.core.records import InboundMessage
from carehub.demo_receivers import DemoRecipient
from carehub.hub import Hub
from carehub.mappings import convert_text
from tests.conftest import FEED
from tests.integration.conftest import dead_letters, eventually, hub_settings

pytestmark = pytest.mark.integration


def inbound_as_written_by_0_1(feed_file: str) -> dict[str, Any]:
    """The exact JSON carehub 0.1.0's listener put on hl7v2.inbound (no record versioning then)."""
    text = (FEED / feed_file).read_text().replace("\n", "\r")
    header = read_header(parse_message(text))
    return {
        "raw_b64": InboundMessage.encode_raw(text.encode()),
        "charset": "utf-8",
        "received_at": "2026-11-03T22:00:01Z",
        "listener": "mllp:test",
        "peer": "127.0.0.1",
        "control_id": header.control_id,
        "message_type": header.message_type,
        "trigger_event": header.trigger_event,
        "version": header.version,
        "sending_application": header.sending_application,
        "sending_facility": header.sending_facility,
        "patient_key": convert_text(text, validate=False).event.patient_key,
        "schema": "carehub.inbound-hl7v2/1",
    }


async def test_old_and_new_minor_records_are_read_and_a_newer_major_is_dead_lettered(
    broker: str, config_dir: Path, recipients: dict[str, DemoRecipient]
) -> None:
    old = inbound_as_written_by_0_1("05-a01-admit-okafor.hl7")
    newer_minor = {
        **inbound_as_written_by_0_1("02-a01-admit-rivera.hl7"),
        "schema": "carehub.inbound-hl7v2/1.3",
        "tls_peer_subject": "CN=adt.rgh.example",  # a field this release does not know
        "ingest_node": "ingest-7",
    }
    newer_major = {**inbound_as_written_by_0_1("04-a03-discharge-rivera.hl7"), "schema": "carehub.inbound-hl7v2/2.0"}
    hub = Hub(hub_settings(config_dir, broker), roles=("streams",))
    await hub.start()
    try:
        producer = AIOKafkaProducer(bootstrap_servers=hub.bootstrap, acks="all")
        await producer.start()
        try:
            for record in (old, newer_major, newer_minor):
                key = str(record["patient_key"]).encode()
                await producer.send_and_wait(hub.topics.hl7v2_inbound, orjson.dumps(record), key=key)
        finally:
            await producer.stop()
        pcp = recipients["pcp-riverside"]
        m = hub.metrics
        await eventually(lambda: (m.total("normalized"), m.get("stage_failed", stage="normalize")) == (2, 1), 40)
        await eventually(lambda: len({r.focus for r in pcp.received}) >= 2, 40)  # both visits notified
        letters = [d for d in await dead_letters(hub.bootstrap, hub.topics.dead_letters) if d.stage == "normalize"]
    finally:
        await hub.stop()
    (letter,) = letters
    assert letter.error_code == "record-version"
    assert letter.reason == (
        "record carehub.inbound-hl7v2/2.0 is a newer major version than this worker reads "
        "(carehub.inbound-hl7v2/1.x); it was not processed"
    )
    assert letter.source_topic == hub.topics.hl7v2_inbound
    # The dead letter keeps the record as it came, so a worker of the next major can replay it.
    assert orjson.loads(base64.b64decode(letter.record["value_b64"])) == newer_major
