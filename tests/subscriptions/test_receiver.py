"""The rest-hook endpoint over real HTTP, writing to the real broker: 200 only once stored."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import jsonschema
import pytest
from aiokafka import AIOKafkaConsumer

from carehub.adapters.resthook.receiver import Channel, RestHookReceiver, endpoint_path
from carehub.core.records import FhirNotification, InboundRefusal
from carehub.kafka import KafkaPublisher, ensure_topics
from carehub.ops_http import HTTPServer
from tests.core.test_record_versions import schema_of

pytestmark = pytest.mark.integration
SECRET = "s3cret-for-adt"
HEADERS = {"Content-Type": "application/fhir+json", "X-Sub-Secret": SECRET}


class OneChannel:
    def channel(self, source: str, subscription: str) -> Channel | None:
        return Channel("X-Sub-Secret", SECRET) if (source, subscription) == ("ehr", "adt") else None


@pytest.fixture
def refusals() -> list[InboundRefusal]:
    """What the receiver reported for the message journal."""
    return []


@pytest.fixture
async def endpoint(broker: str, refusals: list[InboundRefusal]) -> AsyncIterator[tuple[str, str, KafkaPublisher]]:
    topic = f"fhir-inbound-{uuid.uuid4().hex[:8]}"
    ensure_topics(broker, [topic], 1)
    publisher = KafkaPublisher(broker, "unused", 5.0, notification_topic=topic)
    await publisher.start()
    server = HTTPServer(RestHookReceiver(publisher, OneChannel(), on_refusal=refusals.append).routes(), "127.0.0.1", 0)
    await server.start()
    yield f"http://127.0.0.1:{server.port}{endpoint_path('ehr', 'adt')}", topic, publisher
    await server.stop()
    await publisher.stop()


async def _stored(broker: str, topic: str, count: int) -> list[FhirNotification]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=broker, auto_offset_reset="earliest")
    await consumer.start()
    try:
        found: list[FhirNotification] = []
        while len(found) < count:
            batch = await consumer.getmany(timeout_ms=5000)
            assert batch, "nothing arrived on the topic"
            for r in (r for rs in batch.values() for r in rs):  # each record holds to its published schema
                jsonschema.Draft202012Validator(schema_of(FhirNotification)).validate(json.loads(r.value))
                found.append(FhirNotification.from_json(r.value))
        return found
    finally:
        await consumer.stop()


async def test_corpus_notifications_are_stored_then_acknowledged(
    broker: str, endpoint: tuple[str, str, KafkaPublisher], backport: Path
) -> None:
    url, topic, _ = endpoint
    names = [
        "handshake_bundle_example.json",
        "heartbeat_bundle_example.json",
        "id_only_notification_bundle_example.json",
        "empty_notification_bundle_example.json",
        "full_resource_notification_bundle_example.json",
    ]
    async with aiohttp.ClientSession() as http:
        for name in names:
            async with http.post(url, data=(backport / name).read_bytes(), headers=HEADERS) as res:
                assert res.status == 200, name
                assert (await res.json())["issue"][0]["severity"] == "information"
    stored = await _stored(broker, topic, len(names))
    assert [r.kind for r in stored] == [
        "handshake",
        "heartbeat",
        "event-notification",
        "event-notification",
        "event-notification",
    ]
    assert {(r.source, r.subscription) for r in stored} == {("ehr", "adt")}
    assert stored[2].event_numbers == [1] and stored[2].events_since_start == 1
    assert stored[4].bundle["entry"][1]["resource"]["resourceType"] == "Encounter"


async def test_refusals_carry_an_operation_outcome(
    endpoint: tuple[str, str, KafkaPublisher], backport: Path, refusals: list[InboundRefusal]
) -> None:
    url, _, _ = endpoint
    good = (backport / "heartbeat_bundle_example.json").read_bytes()
    cases = [
        (url, {**HEADERS, "X-Sub-Secret": "nope"}, good, 401),
        (url, {"Content-Type": "application/fhir+json"}, good, 401),
        (url.replace("/adt", "/other"), HEADERS, good, 401),  # unknown: no oracle of which exist
        (url, {**HEADERS, "Content-Type": "text/plain"}, good, 415),
        (url, HEADERS, b"\xff\xfe garbage", 400),
        (url, HEADERS, b'{"resourceType": "Parameters"}', 422),
        (url, HEADERS, (backport / "empty_notification_bundle_non_conformant_example.json").read_bytes(), 400),
    ]
    async with aiohttp.ClientSession() as http:
        for target, headers, body, want in cases:
            async with http.post(target, data=body, headers=headers) as res:
                assert res.status == want, (want, await res.text())
                outcome = await res.json()
                assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["severity"] == "error"
    # the proven caller's refusals are reported for the message journal; strangers' 401s are not
    assert [r.ack_code for r in refusals] == ["415", "400", "422", "400"]
    assert {(r.source, r.sending_facility, r.control_id, r.message_type) for r in refusals} == {
        ("fhir", "ehr", "adt", "fhir:notification")
    }
    assert refusals[1].error_code and refusals[1].reason
    assert base64.b64decode(refusals[1].raw_b64) == b"\xff\xfe garbage"


async def test_unconfirmed_write_gets_503_so_the_source_retries(
    endpoint: tuple[str, str, KafkaPublisher], backport: Path
) -> None:
    url, _, publisher = endpoint
    await publisher.stop()  # the producer is gone: the broker cannot confirm anything
    async with aiohttp.ClientSession() as http:
        body = (backport / "id_only_notification_bundle_example.json").read_bytes()
        async with http.post(url, data=body, headers=HEADERS) as res:
            assert res.status == 503
            assert (await res.json())["issue"][0]["code"] == "transient"
