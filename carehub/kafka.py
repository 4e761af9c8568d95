"""Kafka plumbing for the composition root: topic provisioning and the ingest publisher.

Topic provisioning uses kafka-python's admin client (synchronous, run once at
start-up). The ingest publisher uses aiokafka: measured here, aiokafka writes
~70k small msgs/s batched against ~12k/s for kafka-python (shared/docs/KAFKA.md),
and an asyncio producer lets every MLLP connection await its own acks=all
write without a thread per connection. Inbound records go out on the producer's
connections through carehub.kafka_direct (one request of the publisher's own in
flight per leader, what arrives meanwhile in the next); the producer's own path
takes what that cannot, and the FHIR notifications and refusal records.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError as AIOKafkaError
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from carehub.core.errors import BrokerError, MessageTooLargeError, StorageUnavailableError
from carehub.core.kafka_security import PLAINTEXT, KafkaSecurity
from carehub.core.records import FhirNotification, InboundMessage, InboundRefusal
from carehub.health import DependencyHealth
from carehub.kafka_direct import TOO_LARGE, DirectWriter, Outcome

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Replication:
    """Replicas per topic (also the fewest accepted on an existing topic) and min.insync.replicas."""

    factor: int
    min_insync: int


def replication_for(brokers: int, factor: int | None = None, min_insync: int | None = None) -> Replication:
    """The configured values, else 3 and 2 on a cluster of at least 3 brokers and 1 and 1 below that."""
    chosen = Replication(factor or (3 if brokers >= 3 else 1), min_insync or (2 if brokers >= 3 else 1))
    if chosen.min_insync > chosen.factor:
        raise BrokerError(f"kafka.min_insync_replicas {chosen.min_insync} exceeds replication_factor {chosen.factor}")
    return chosen


def _replicas(description: dict[str, object]) -> int:
    """The fewest distinct replicas of any partition of a described topic."""
    partitions = description.get("partitions") or []
    assert isinstance(partitions, list)
    return min((len(set(p.get("replica_nodes") or [])) for p in partitions), default=0)


def _check_replication(admin: KafkaAdminClient, names: list[str], wanted: Replication, brokers: int) -> None:
    """Refuse to run on topics that hold fewer copies than configured, or a cluster that cannot hold them."""
    if names:
        thin = [f"{d['name']} ({_replicas(d)})" for d in admin.describe_topics(names) if _replicas(d) < wanted.factor]
        if thin:
            raise BrokerError(
                f"refusing to start: topic(s) {', '.join(thin)} have fewer replicas than kafka.replication_factor "
                f"{wanted.factor}; an acknowledged write would not survive a broker loss. Reassign their replicas "
                "(kafka-reassign-partitions) or lower kafka.replication_factor deliberately"
            )
    if wanted.factor > brokers:
        raise BrokerError(
            f"refusing to start: kafka.replication_factor {wanted.factor} needs at least {wanted.factor} brokers, "
            f"the cluster has {brokers}"
        )


def ensure_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int,
    compacted: Iterable[str] = (),
    *,
    security: KafkaSecurity = PLAINTEXT,
    replication_factor: int | None = None,
    min_insync_replicas: int | None = None,
) -> Replication:
    """Create the topics that do not exist yet (idempotent, safe with several workers) with the
    replication this cluster calls for, after checking the existing ones hold at least that many copies."""
    compact = set(compacted)
    names = list(names)
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000, **security.kafka_python())
    except (KafkaError, OSError) as exc:
        raise BrokerError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
    try:
        brokers = len(admin.describe_cluster().get("brokers") or [])
        replication = replication_for(brokers, replication_factor, min_insync_replicas)
        existing = set(admin.list_topics())
        _check_replication(admin, [n for n in names if n in existing], replication, brokers)
        durability = {"min.insync.replicas": str(replication.min_insync)} if replication.min_insync > 1 else {}
        wanted = [
            NewTopic(
                name,
                partitions,
                replication.factor,
                topic_configs={**durability, **({"cleanup.policy": "compact"} if name in compact else {})},
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
    return replication


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
        refusal_topic: str = "",
        max_request_size: int = 1_000_000,
        on_back: Callable[[], Awaitable[None]] | None = None,
        security: KafkaSecurity = PLAINTEXT,
    ) -> None:
        self._topic = topic
        self._timeout_s = timeout_s
        timeout_ms = int(timeout_s * 1000)
        #: Inbound records written by the direct path (carehub.kafka_direct), and through the producer's queue.
        self.writes = {"direct": 0, "producer": 0}
        self._notification_topic = notification_topic
        self._refusal_topic = refusal_topic
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            linger_ms=0,
            request_timeout_ms=timeout_ms,
            retry_backoff_ms=100,
            max_request_size=max_request_size,
            **security.aiokafka(),
        )
        self.direct = DirectWriter(self._producer.client, topic, max_request_size, timeout_ms)  # same bound
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

    def publish(self, message: InboundMessage) -> Awaitable[None]:
        """Start the acks=all write of one inbound record; answer what to await for the broker's confirmation.

        The record goes out on the direct path (:class:`carehub.kafka_direct.DirectWriter`): on the
        wire when this returns if no request of this publisher is in flight to its partition's leader
        (the caller prepares its answer while the broker works), else in the next request to it,
        together with whatever else arrived meanwhile. Where that path cannot take it (no metadata
        yet, no connection, a record near the size limit) or the broker answered a retriable error
        (a leader moved), the producer's own path does: it refreshes metadata and retries within
        the produce timeout. The awaitable must be awaited (a lone record's request is awaited by
        its own caller, and the records that wait for it are sent after).
        """
        if not self.health.healthy:
            raise StorageUnavailableError("the broker is unreachable; resend the message later")
        key, value = message.patient_key.encode(), message.to_json()
        try:
            written = self.direct.write(key, value)
        except AIOKafkaError:
            written = None  # the producer's path reports it, or retries it
        if written is not None:
            self.writes["direct"] += 1
        return self._confirmed(written, key, value)

    async def _confirmed(self, written: Awaitable[Outcome] | None, key: bytes, value: bytes) -> None:
        try:
            if written is not None:
                error = await written
                if error is None:
                    return
                if not error.retriable:
                    raise error()
            self.writes["producer"] += 1
            pending = await self._producer.send(self._topic, value, key=key)
            await pending
        except TOO_LARGE as exc:  # this record, not the broker: a content answer, the broker stays "up"
            raise MessageTooLargeError("the broker refused the message as too large to store") from exc
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

    async def publish_refusal(self, record: InboundRefusal) -> None:
        """A refused message for the message journal, keyed by sending facility, acks=all."""
        if not self._refusal_topic:
            raise StorageUnavailableError("no topic is configured for refused messages")
        if not self.health.healthy:
            raise StorageUnavailableError("the broker is unreachable")
        try:
            key = record.sending_facility.encode()
            pending = await self._producer.send(self._refusal_topic, record.to_json(), key=key)
            await pending
        except TOO_LARGE as exc:
            raise MessageTooLargeError("the refusal record is too large to store") from exc
        except (AIOKafkaError, TimeoutError, OSError) as exc:
            self.health.observe(False)
            raise StorageUnavailableError("the refusal could not be stored") from exc
