"""Kafka channel: publish the payload to a topic per recipient or per recipient class.

For HIEs that consume directly. The topic is the recipient's
``connection.topic``, else its endpoint (``kafka:NAME``, ``kafka://NAME`` or
``NAME``); ``{recipient}`` in the name is replaced by the recipient id, so one
entry can serve a class of recipients (``carehub.out.hie``) or one each
(``carehub.out.{recipient}``). The record key is the patient key (per-patient
order), the value the payload as JSON, and the headers carry
``idempotency-key``, ``delivery-id`` and ``content-type``. A send succeeds
only when Kafka acknowledges it with acks=all. A topic is provisioned before
its first record by the ``provision`` callable the hub passes in: the one
topic provisioner, ``carehub.kafka.ensure_topics`` (partitions, replication
checked against the cluster, min.insync.replicas); without one the topic must
exist or the cluster creates it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]
from aiokafka.errors import KafkaError  # type: ignore[import-untyped]

from carehub.connectors.base import payload_bytes
from carehub.core.errors import BrokerError, DeliveryError
from carehub.core.kafka_security import PLAINTEXT, KafkaSecurity
from carehub.core.records import Delivery

Options = Callable[[str], Mapping[str, str]]
#: Make sure a topic exists (``carehub.kafka.ensure_topics`` for one topic, run off the event loop).
Provision = Callable[[str], Awaitable[object]]


def topic_for(delivery: Delivery, options: Mapping[str, str]) -> str:
    name = options.get("topic") or delivery.endpoint
    for prefix in ("kafka://", "kafka:"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    return name.replace("{recipient}", delivery.recipient_id)


class KafkaTopicDestination:
    def __init__(
        self,
        bootstrap: str,
        timeout_s: float,
        options_for: Options | None = None,
        *,
        security: KafkaSecurity = PLAINTEXT,
        provision: Provision | None = None,
    ) -> None:
        self._bootstrap = bootstrap
        self._security = security
        self._provision = provision
        self._timeout_s = timeout_s
        self._options_for = options_for or (lambda _: {})
        self._producer: AIOKafkaProducer | None = None
        self._known: set[str] = set()
        self._lock = asyncio.Lock()

    async def _start(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self._bootstrap,
                    acks="all",
                    request_timeout_ms=int(self._timeout_s * 1000),
                    **self._security.aiokafka(),
                )
                await producer.start()
                self._producer = producer
        return self._producer

    async def _ensure(self, topic: str) -> None:
        if topic in self._known:
            return
        if self._provision is not None:
            await self._provision(topic)
        self._known.add(topic)

    async def publish(self, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        """Publish one record and wait for acks=all (raises DeliveryError, transient)."""
        try:
            producer = await self._start()
            await self._ensure(topic)
            await asyncio.wait_for(producer.send_and_wait(topic, value, key=key, headers=headers), self._timeout_s)
        except (KafkaError, TimeoutError, OSError) as exc:
            raise DeliveryError(f"Kafka did not take the record: {type(exc).__name__}", permanent=False) from exc
        except BrokerError as exc:  # from the provisioner: the cluster is away or refuses the topic
            raise DeliveryError(f"topic {topic} not provisioned: {exc.message}", permanent=False) from exc

    async def send(self, delivery: Delivery) -> int:
        topic = topic_for(delivery, self._options_for(delivery.recipient_id))
        if not topic:
            raise DeliveryError("kafka recipient has no topic", permanent=True)
        headers = [
            ("idempotency-key", delivery.idempotency_key.encode()),
            ("delivery-id", delivery.delivery_id.encode()),
            ("content-type", delivery.content_type.encode()),
        ]
        body = payload_bytes(delivery)
        await self.publish(topic, delivery.patient_key.encode(), body, headers)
        return 200

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
