"""Kafka plumbing for the composition root: topic provisioning and the ingest publisher.

Topic provisioning uses kafka-python's admin client (synchronous, run once at
start-up). The ingest publisher uses aiokafka: measured here, aiokafka writes
~70k small msgs/s batched against ~12k/s for kafka-python (shared/docs/KAFKA.md),
and an asyncio producer lets every MLLP connection await its own acks=all
write without a thread per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError as AIOKafkaError
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from carehub.health import DependencyHealth
from core.errors import BrokerError, StorageUnavailableError
from core.records import FhirNotification, InboundMessage

log = logging.getLogger(__name__)


def ensure_topics(bootstrap: str, names: Iterable[str], partitions: int, compacted: Iterable[str] = ()) -> None:
    """Create the topics that do not exist yet (idempotent, safe with several workers)."""
    compact = set(compacted)
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    except (KafkaError, OSError) as exc:
        raise BrokerError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
    try:
        existing = set(admin.list_topics())
        wanted = [
            NewTopic(
                name,
                partitions,
                1,
                topic_configs={"cleanup.policy": "compact"} if name in compact else {},
            )
            for name in names
            if name not in existing
        ]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker won the race
                admin.create_topics(wanted)
            log.info("created topics: %s", ", ".join(t.name for t in wanted))
    except KafkaError as exc:
        raise BrokerError(f"cannot create topics on {bootstrap}: {exc}") from exc
    finally:
        admin.close()


class KafkaPublisher:
    """Writes inbound messages with acks=all; returns only once Kafka confirmed.

    Implements the MLLP adapter's ``Publisher`` seam: a write that is not
    confirmed within ``timeout_s`` raises StorageUnavailableError, so the
    sender gets AR 207 (and retries) instead of AA. The bound is the
    producer's own ``request_timeout_ms`` (metadata waits and batch expiry),
    so a write that timed out is never delivered later. While :attr:`health`
    says the broker is lost, writes fail at once instead of waiting.
    ``max_request_size`` is the deployment's record limit (kafka.max_record_bytes).
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        timeout_s: float,
        *,
        notification_topic: str = "",
        max_request_size: int = 1_000_000,
        on_back: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._topic = topic
        self._timeout_s = timeout_s
        self._notification_topic = notification_topic
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            linger_ms=0,
            request_timeout_ms=int(timeout_s * 1000),
            retry_backoff_ms=100,
            max_request_size=max_request_size,
        )
        self.health = DependencyHealth(
            "Kafka broker",
            bootstrap,
            self._probe,
            impact="MLLP answers AR 207 and /ready is false until it is back",
            on_back=on_back,
            errors=(BrokerError, AIOKafkaError, KafkaError, OSError, TimeoutError),
        )

    async def start(self) -> None:
        try:
            await self._producer.start()
        except AIOKafkaError as exc:
            raise BrokerError(f"cannot start the Kafka producer: {exc}") from exc
        self.health.start()

    async def stop(self) -> None:
        await self.health.stop()
        await self._producer.stop()

    async def _probe(self) -> bool:
        """One metadata round trip, bounded by the produce timeout."""
        async with asyncio.timeout(self._timeout_s):
            return bool(await self._producer.client.force_metadata_update())

    async def publish(self, message: InboundMessage) -> None:
        if not self.health.healthy:
            raise StorageUnavailableError("the broker is unreachable; resend the message later")
        try:
            pending = await self._producer.send(self._topic, message.to_json(), key=message.patient_key.encode())
            await pending
        except (AIOKafkaError, TimeoutError, OSError) as exc:
            self.health.observe(False)
            raise StorageUnavailableError("the message could not be stored durably; resend it") from exc

    async def publish_notification(self, record: FhirNotification) -> None:
        """The rest-hook receiver's ``Publisher`` seam: one notification, keyed by source, acks=all."""
        if not self._notification_topic:
            raise StorageUnavailableError("no topic is configured for FHIR notifications")
        if not self.health.healthy:
            raise StorageUnavailableError("the broker is unreachable; resend the notification later")
        try:
            pending = await self._producer.send(self._notification_topic, record.to_json(), key=record.source.encode())
            await pending
        except (AIOKafkaError, TimeoutError, OSError) as exc:
            self.health.observe(False)
            raise StorageUnavailableError("the notification could not be stored durably; resend it") from exc
