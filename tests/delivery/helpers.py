"""Delivery records for tests, and a producer that puts them on a real topic."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]

from carehub.core.records import Delivery


def delivery(
    n: int,
    *,
    recipient: str = "pcp-riverside",
    patient: str = "RGH|MRN1",
    endpoint: str = "http://x/",
    channel: str = "webhook",
) -> Delivery:
    key = f"idem-{recipient}-{patient.replace('|', '-')}-{n:04d}"
    return Delivery(
        delivery_id=key,
        idempotency_key=key,
        event_id=f"e{n}",
        patient_key=patient,
        recipient_id=recipient,
        action="notify",
        channel=channel,
        endpoint=endpoint,
        content_type="application/fhir+json",
        payload={"resourceType": "Bundle", "type": "message", "id": key, "entry": [{"seq": n, "patient": patient}]},
        rule_id="r1",
        map_version="v1",
    )


async def produce(bootstrap: str, topic: str, records: list[Delivery]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for record in records:
            await producer.send_and_wait(topic, record.to_json(), key=record.patient_key.encode())
    finally:
        await producer.stop()
