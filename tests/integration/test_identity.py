"""Two hospitals' MRN 12345 stay two patients: keys on the inbound topic and on care.events.

Every care.events record read back is validated against the published schema
(config/schemas/care-event.schema.json) and keyed as docs/architecture.md says.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest
from aiokafka import AIOKafkaConsumer

from carehub.connectors.mllp import MLLPClient, ack_code
from carehub.core.records import CareEvent, InboundMessage
from carehub.demo_receivers import DemoRecipient
from carehub.hub import Hub
from tests.authkit import Issuer
from tests.conftest import CONFIG
from tests.core.test_record_versions import schema_of
from tests.integration.conftest import hub_settings

pytestmark = pytest.mark.integration

CARE_EVENT_SCHEMA = json.loads((CONFIG / "schemas" / "care-event.schema.json").read_text())


def _admit(facility: str, control_id: str, name: str) -> bytes:
    """An A01 whose PID-3 (MRN 12345) has no assigning authority (CX.4 empty)."""
    return "\r".join(
        [
            f"MSH|^~\\&|ADT|{facility}|CAREHUB|CAREHUB|20261103220000-0500||ADT^A01^ADT_A01|{control_id}|P|2.5.1",
            "EVN|A01|20261103220000-0500",
            f"PID|1||12345^^^^MR||{name}^PAT||19700101|F",
            f"PV1|1|I|3E^310^B||||||||MED|||||||||V-{control_id}|||||||||||||||||||||||||20261103214500-0500",
            "",
        ]
    ).encode()


async def _read(bootstrap: str, topic: str, expected: int) -> list[tuple[bytes, bytes]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    found: list[tuple[bytes, bytes]] = []
    try:
        for _ in range(60):
            batch = await consumer.getmany(timeout_ms=1000)
            found.extend((r.key, r.value) for records in batch.values() for r in records)
            if len(found) >= expected:
                break
    finally:
        await consumer.stop()
    return found


@pytest.fixture
async def identity_hub(
    broker: str, config_dir: Path, recipients: dict[str, DemoRecipient], issuer: Issuer
) -> AsyncIterator[Hub]:
    settings = replace(hub_settings(config_dir, broker), default_authorities={"southclinic": "SOUTHNET"})
    running = Hub(settings)
    await running.start()
    yield running
    await running.stop()


async def test_same_mrn_without_authority_from_two_facilities_is_two_patients(identity_hub: Hub) -> None:
    hub = identity_hub
    client = MLLPClient("127.0.0.1", hub.mllp_port)
    try:
        assert ack_code(await client.send(_admit("NORTHHOSP", "N-1", "NORTH"))) == "AA"
        assert ack_code(await client.send(_admit("SOUTHCLINIC", "S-1", "SOUTH"))) == "AA"
    finally:
        await client.close()

    inbound = await _read(hub.bootstrap, hub.topics.hl7v2_inbound, 2)
    for _, value in inbound:  # the published contract of the inbound topic holds too
        jsonschema.Draft202012Validator(schema_of(InboundMessage)).validate(json.loads(value))
    keys = {InboundMessage.from_json(value).sending_facility: key for key, value in inbound}
    # not listed: the facility is the authority; listed: the configured default
    assert keys == {"NORTHHOSP": b"NORTHHOSP|12345", "SOUTHCLINIC": b"SOUTHNET|12345"}

    events = await _read(hub.bootstrap, hub.topics.care_events, 2)
    assert len(events) == 2
    patients = {}
    for key, value in events:
        record = json.loads(value)
        errors = [e.message for e in jsonschema.Draft202012Validator(CARE_EVENT_SCHEMA).iter_errors(record)]
        assert not errors, errors  # the published contract holds for what is written
        event = CareEvent.from_json(value)
        assert key == event.patient_key.encode(), "care.events is keyed by patient key"
        patients[event.patient_key] = event.patient_id
    assert set(patients) == {"NORTHHOSP|12345", "SOUTHNET|12345"}
    assert len(set(patients.values())) == 2, "two Patient resources, not one"
