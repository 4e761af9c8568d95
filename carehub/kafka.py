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
import time
from collections.abc import Awaitable, Callable, Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError as AIOKafkaError
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

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


class BrokerHealth:
    """Whether the broker is reachable: a periodic probe plus the outcome of every write.

    Logs one line when the broker is lost and one when it is back, nothing in
    between. Before it reports "back" it runs ``on_back`` (topic provisioning:
    a broker that lost its storage comes back without topics) and stays down
    if that fails. Probes back off from ``interval_s`` up to ``max_interval_s``
    while the broker stays away.
    """

    def __init__(
        self,
        name: str,
        probe: Callable[[], Awaitable[bool]],
        *,
        on_back: Callable[[], Awaitable[None]] | None = None,
        interval_s: float = 1.0,
        max_interval_s: float = 2.0,
    ) -> None:
        self._name = name
        self._probe = probe
        self._on_back = on_back
        self._interval = interval_s
        self._max_interval = max_interval_s
        self._healthy = True
        self._lost_at = 0.0
        self._task: asyncio.Task[None] | None = None

    @property
    def healthy(self) -> bool:
        return self._healthy

    def observe(self, ok: bool) -> None:
        """A write failed (``ok`` False): the broker counts as lost until a probe says otherwise."""
        if not ok and self._healthy:
            self._mark_lost("a write was not confirmed")

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._watch(), name=f"broker-health:{self._name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _watch(self) -> None:
        delay = self._interval
        while True:
            await asyncio.sleep(delay)
            ok = await self._check()
            if ok and not self._healthy:
                self._healthy = True
                log.warning("Kafka broker %s is back after %.1f s", self._name, time.monotonic() - self._lost_at)
            elif not ok and self._healthy:
                self._mark_lost("it does not answer metadata requests")
            delay = self._interval if self._healthy else min(delay * 2, self._max_interval)

    async def _check(self) -> bool:
        try:
            if not await self._probe():
                return False
            if not self._healthy and self._on_back is not None:
                await self._on_back()
        except (BrokerError, AIOKafkaError, KafkaError, OSError, TimeoutError):
            return False
        return True

    def _mark_lost(self, why: str) -> None:
        self._healthy = False
        self._lost_at = time.monotonic()
        log.warning(
            "Kafka broker %s lost (%s): MLLP answers AR 207 and /ready is false until it is back", self._name, why
        )


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
        self.health = BrokerHealth(bootstrap, self._probe, on_back=on_back)

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
        try:
            pending = await self._producer.send(self._notification_topic, record.to_json(), key=record.source.encode())
            await pending
        except (AIOKafkaError, TimeoutError, OSError) as exc:
            log.warning("notification write not confirmed: source=%s error=%s", record.source, type(exc).__name__)
            raise StorageUnavailableError("the notification could not be stored durably; resend it") from exc
