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
from dataclasses import dataclass
from typing import Any

import aiokafka.errors as aiokafka_errors
from aiokafka import AIOKafkaProducer
from aiokafka.client import ConnectionGroup
from aiokafka.conn import CloseReason
from aiokafka.errors import KafkaError as AIOKafkaError
from aiokafka.errors import MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError
from aiokafka.structs import TopicPartition
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from carehub.core.errors import BrokerError, MessageTooLargeError, StorageUnavailableError
from carehub.core.kafka_security import PLAINTEXT, KafkaSecurity
from carehub.core.records import FhirNotification, InboundMessage, InboundRefusal
from carehub.health import DependencyHealth
from carehub.kafka_wire import ProduceRecords
from carehub.partitioner import partition_for

log = logging.getLogger(__name__)

#: Produce errors about one record's size: answered as content (AR), not as a broker outage.
_TOO_LARGE = (MessageSizeTooLargeError, RecordTooLargeError, RecordListTooLargeError)


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


#: After records overlapped (several senders at once), how long they keep to the producer's batches.
_SOLO_AFTER_S = 0.5
#: Batch and request framing around one record (the producer's own check decides near the limit).
_RECORD_OVERHEAD = 512


@dataclass(frozen=True, slots=True)
class _Written:
    """A produce request on the wire: its connection and the awaitable of its response."""

    conn: Any
    response: Awaitable[Any]


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
        self._timeout_ms = int(timeout_s * 1000)
        #: Inbound writes started and not yet settled, and the direct request in flight (see publish).
        self._storing = 0
        self._direct: asyncio.Future[None] | None = None
        #: Until then records take the producer's batching path (another started while one was stored).
        self._batching_until = 0.0
        self._max_request_size = max_request_size
        #: Inbound records written as their own request at once, and through the producer's queue.
        self.writes = {"direct": 0, "producer": 0}
        self._notification_topic = notification_topic
        self._refusal_topic = refusal_topic
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            linger_ms=0,
            request_timeout_ms=int(timeout_s * 1000),
            retry_backoff_ms=100,
            max_request_size=max_request_size,
            **security.aiokafka(),
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

    def publish(self, message: InboundMessage) -> Awaitable[None]:
        """Start the acks=all write of one inbound record; answer what to await for the broker's confirmation.

        When records come one at a time (nothing else being stored now, nor for the last
        :data:`_SOLO_AFTER_S`), the record goes out at once as its own produce request (on the wire
        when this returns; see :meth:`_write_now`), so the caller can prepare its answer while the
        broker works. Otherwise it takes the producer's path, which batches what arrives while a
        request is in flight: with several senders at once a request per record would cost more
        than the loop turns it saves. Records that arrive while a direct request is in flight wait
        for it first, so requests stay one at a time. The awaitable must be awaited (it settles the
        count of writes in progress).
        """
        if not self.health.healthy:
            raise StorageUnavailableError("the broker is unreachable; resend the message later")
        key, value = message.patient_key.encode(), message.to_json()
        written = None
        now = asyncio.get_running_loop().time()
        if self._storing:
            self._batching_until = now + _SOLO_AFTER_S
        elif now >= self._batching_until:
            try:
                written = self._write_now(self._topic, key, value)
            except AIOKafkaError:
                written = None  # the producer's path reports it, or retries it
        self._storing += 1
        if written is not None:
            self._direct = asyncio.get_running_loop().create_future()
        return self._confirmed(written, key, value)

    def _write_now(self, topic: str, key: bytes, value: bytes) -> _Written | None:
        """One record as its own produce request, written on the producer's connection at once.

        None where that cannot be done right now (no metadata for the topic, no leader, no open
        connection, a request in flight on it): the producer's own path takes it then. This skips
        the producer's sender task (its queue and the loop turns between them: about 0.1 ms on
        this VM), which on a stop-and-wait connection is latency on every message. The record is
        partitioned as the producer would (murmur2 of the key over the topic's partitions), so the
        topic stays co-partitioned with the stages that read it.
        """
        if len(key) + len(value) + _RECORD_OVERHEAD > self._max_request_size:
            return None  # the producer's own size check answers it
        client = self._producer.client
        cluster = client.cluster
        partitions = cluster.partitions_for_topic(topic)
        if not partitions:
            return None
        partition = partition_for(key, list(partitions))
        leader = cluster.leader_for_partition(TopicPartition(topic, partition))
        if leader is None or leader == -1:
            return None
        conn = client._conns.get((leader, ConnectionGroup.DEFAULT))
        if conn is None or not conn.connected() or conn._requests:
            return None
        batch = self._producer.create_batch()
        if batch.append(timestamp=None, key=key, value=value) is None:
            return None
        request = ProduceRecords(
            required_acks=-1,
            timeout=self._timeout_ms,
            topics=[(topic, [(partition, batch._build())])],
            transactional_id=None,
        )
        written = _Written(conn, conn.send(request))
        self.writes["direct"] += 1
        return written

    async def _confirmed(self, written: _Written | None, key: bytes, value: bytes) -> None:
        try:
            if written is not None:
                direct = self._direct
                try:
                    error = await self._response_error(written)
                finally:
                    if direct is not None and not direct.done():
                        direct.set_result(None)
                    if self._direct is direct:
                        self._direct = None
                if error is None:
                    return
                if not error.retriable:
                    raise error()
            elif self._direct is not None:
                await asyncio.shield(self._direct)  # one request at a time: join the batch after it
            # Not written directly, or a retriable error (a leader moved): the producer's path,
            # which refreshes metadata and retries within the produce timeout.
            self.writes["producer"] += 1
            pending = await self._producer.send(self._topic, value, key=key)
            await pending
        except _TOO_LARGE as exc:  # this record, not the broker: a content answer, the broker stays "up"
            raise MessageTooLargeError("the broker refused the message as too large to store") from exc
        except (AIOKafkaError, TimeoutError, OSError) as exc:
            self.health.observe(False)
            raise StorageUnavailableError("the message could not be stored durably; resend it") from exc
        finally:
            self._storing -= 1

    async def _response_error(self, written: _Written) -> type[AIOKafkaError] | None:
        """The produce response's error for the one partition written, None when it was stored."""
        try:
            response = await written.response
        except TimeoutError:
            written.conn.close(reason=CloseReason.CONNECTION_TIMEOUT)
            raise
        except AIOKafkaError as exc:
            if getattr(exc, "retriable", False):
                return type(exc)
            raise
        for _topic, partitions in response.topics:
            for partition_info in partitions:
                error: type[AIOKafkaError] = aiokafka_errors.for_code(partition_info[1])
                if error is not aiokafka_errors.NoError:
                    if getattr(error, "invalid_metadata", False):
                        self._producer.client.force_metadata_update()
                    return error
        return None

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
        except _TOO_LARGE as exc:
            raise MessageTooLargeError("the refusal record is too large to store") from exc
        except (AIOKafkaError, TimeoutError, OSError) as exc:
            self.health.observe(False)
            raise StorageUnavailableError("the refusal could not be stored") from exc
