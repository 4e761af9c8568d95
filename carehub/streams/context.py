"""What every stage module gets: its dependencies and the worker's one producer.

Stage modules (carehub/streams/agents/*.py) each expose ``handler(ctx, ...)``, the
batch handler a streams.stage.Stage runs; they move records between topics and
call pure decision functions, nothing more. New dependencies are added to
``StreamDeps``; new topics to core.topics.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from carehub.connectors.base import Destination
from carehub.core.clock import now_iso
from carehub.core.errors import CarehubError, RecordTooLargeError
from carehub.core.lograte import LogThrottle
from carehub.core.metrics import Metrics
from carehub.core.records import DeadLetter, Record
from carehub.core.topics import Topics
from carehub.journal import Journal
from carehub.streams.consent.deps import ConsentDeps
from carehub.streams.delivery_policy import RetryPolicy
from carehub.streams.notify import Hub
from carehub.streams.outbox import Headers, Send, send_durably
from carehub.streams.packet.step import PacketDeps
from carehub.streams.routing.model import RoutingMap
from carehub.streams.subscriptions.deps import SubscriptionDeps

log = logging.getLogger(__name__)
_dead_letter_lines = LogThrottle(10.0)
#: Room for the key, headers and batch framing within the producer's request limit (as at ingest).
RECORD_OVERHEAD = 1_024
#: Room for a dead letter's own fields beside the copied input.
DEAD_LETTER_ROOM = 4_096


class RoutingSource(Protocol):
    def current(self) -> RoutingMap: ...


@dataclass(frozen=True)
class StreamDeps:
    topics: Topics
    routing: RoutingSource
    destinations: Mapping[str, Destination]
    retry: RetryPolicy
    hub: Hub
    metrics: Metrics
    #: Delivery attempts, outcomes, dead letters, order state, tasks (None: an in-memory SQLite one).
    journal: Journal | None = None
    delivery_timeout_s: float = 10.0
    #: FHIR subscription sources and their readers (None: no subscriptions configured).
    subscriptions: SubscriptionDeps | None = None
    #: 42 CFR Part 2 policy and the consents on file (None: no Part 2 programs, nothing on file).
    consent: ConsentDeps | None = None
    #: The ``default_authorities`` setting: sender -> authority for PID-3 without CX.4 (core.patient).
    default_authorities: Mapping[str, str] = field(default_factory=dict)
    #: Transition-of-care packets: the enrichment budget and a FHIR source per facility (None: no enrichment).
    packet: PacketDeps | None = None


class AgentContext:
    """Deps plus the worker's producer (raw bytes out, keyed by patient key, acks=all)."""

    def __init__(self, deps: StreamDeps, produce: Send, max_request_size: int) -> None:
        self.deps = deps
        self.metrics = deps.metrics
        #: (topic, key, value, partition) -> a future resolved when the broker has the record
        self.produce = produce
        self._furthest: dict[tuple[str, Any], int] = {}
        #: stage name -> the high-water mark of a record's partition (stages run by streams.stage)
        self.highwaters: dict[str, Callable[[Any], int | None]] = {}
        #: The largest value a stage may produce: the producer's request limit less room for key and batch.
        self.max_record_bytes = max_request_size - RECORD_OVERHEAD

    def stage_done(self, stage: str, event: Any, highwater: int | None = None) -> None:
        """Metrics for an input a stage has finished: seconds since it was written to its topic
        (``stage_latency_seconds``) and how many records of its partition are still behind it
        (``consumer_lag``). ``event``: an aiokafka record (its partition's ``highwater`` found from the stage)."""
        item = Input.of(event)
        if item.timestamp_s:
            self.metrics.observe("stage_latency_seconds", max(0.0, time.time() - item.timestamp_s), stage=stage)
        if highwater is None and stage in self.highwaters:
            highwater = self.highwaters[stage](event)
        if highwater is not None:
            # Stages finish records out of order (deliver runs patients concurrently): count from the
            # furthest offset finished on this partition, not from the one that finished last.
            where = (stage, (item.topic, item.partition))
            furthest = self._furthest[where] = max(self._furthest.get(where, -1), item.offset)
            behind = max(0, int(highwater) - furthest - 1)
            self.metrics.set_gauge("consumer_lag", behind, stage=stage, topic=item.topic, partition=str(item.partition))

    def fit(self, value: bytes, what: str) -> bytes:
        """``value`` if the producer can carry it; else RecordTooLargeError (the stage dead-letters its input).

        Checked before anything is sent: a record over the limit fails only when the batch is flushed,
        after the input's offset is queued for commit, and takes the whole worker down with it.
        """
        if len(value) > self.max_record_bytes:
            raise RecordTooLargeError(f"{what} of {len(value)} bytes is over the {self.max_record_bytes}-byte limit")
        return value

    async def send_bytes(
        self, topic_name: str, key: str, value: bytes, partition: int | None = None, headers: Headers = ()
    ) -> None:
        """A value already encoded and checked with ``fit``: kept by the running batch's outbox (or, with
        none, acknowledged before this returns) so nothing is committed before it is durable."""
        await send_durably(self.produce, topic_name, key.encode(), value, partition, headers)

    async def send_raw(self, topic_name: str, key: bytes, value: bytes, partition: int | None = None) -> None:
        """``send_bytes`` with the key already bytes (changelog records)."""
        await send_durably(self.produce, topic_name, key, value, partition)

    async def send_json(self, topic_name: str, key: str, document: dict[str, Any]) -> None:
        """A plain JSON document (e.g. a FHIR resource) rather than a carehub record."""
        await self.send_bytes(topic_name, key, self.fit(orjson.dumps(document), "a JSON document"))

    async def send(self, topic_name: str, key: str, record: Record, headers: Headers = ()) -> None:
        await self.send_bytes(topic_name, key, self.fit(record.to_json(), type(record).__name__), headers=headers)

    async def dead_letter(self, stage: str, error: Exception, event: Any) -> None:
        """Park a record that could not be processed, with its stage and reason (no content in logs)."""
        code = error.code if isinstance(error, CarehubError) else "internal-error"
        reason = error.message if isinstance(error, CarehubError) else type(error).__name__
        item = Input.of(event)
        held = _dead_letter_lines.allow(f"{stage}:{code}")  # a poisoned backlog: one line per cause per interval
        if held is not None:
            log.warning(
                "%s failed: topic=%s partition=%s offset=%s error=%s%s",
                stage,
                item.topic,
                item.partition,
                item.offset,
                code,
                f" ({held} more dead letters of this kind not logged)" if held else "",
            )
        self.metrics.inc("stage_failed", stage=stage)
        value = item.value
        kept = {"value_b64": base64.b64encode(value).decode("ascii")}
        if len(kept["value_b64"]) > self.max_record_bytes - DEAD_LETTER_ROOM:
            kept = {"omitted": f"the {len(value)}-byte input is too large to copy; it stays at its offset"}
        record = DeadLetter(
            stage=stage,
            error_code=code,
            reason=reason,
            source_topic=item.topic,
            source_partition=item.partition,
            source_offset=item.offset,
            failed_at=now_iso(),
            record=kept,
        )
        await self.send(self.deps.topics.dead_letters, item.key_text(), record)


@dataclass(frozen=True, slots=True)
class Input:
    """Where a stage's input came from and what it held (an aiokafka ConsumerRecord)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_s: float | None

    @classmethod
    def of(cls, event: Any) -> Input:
        timestamp = event.timestamp / 1000 if getattr(event, "timestamp", None) else None  # milliseconds
        value = event.value if isinstance(event.value, bytes) else str(event.value).encode()
        key = event.key if isinstance(event.key, bytes) or event.key is None else str(event.key).encode()
        return cls(str(event.topic), int(event.partition), int(event.offset), key, value,
                   float(timestamp) if timestamp else None)  # fmt: skip

    def key_text(self) -> str:
        return self.key.decode("utf-8", "replace") if self.key else ""


def event_key(event: Any) -> str:
    return Input.of(event).key_text()
