"""The Faust app: agents that move records between topics and call pure decisions.

normalize: hl7v2.inbound -> care.events (or the dead-letter topic, with reason)
route:     care.events   -> deliveries (one record per recipient x action)
deliver:   deliveries    -> delivery.outcomes (webhook etc., with retries)

Agents hold no state of their own: offsets live in Kafka, so several workers
with the same app id share the partitions, and per-patient order holds
because every record is keyed by the patient key.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import faust

from connectors.base import Destination
from core.errors import CarehubError
from core.metrics import Metrics
from core.records import CareEvent, DeadLetter, Delivery, InboundMessage, Record
from core.settings import KafkaSettings
from core.topics import Topics
from streams.deliver import RetryPolicy, deliver
from streams.normalize import normalize
from streams.notify import Hub
from streams.plan import plan_deliveries
from streams.routing.decide import decide
from streams.routing.model import RoutingMap

log = logging.getLogger(__name__)

#: Deliveries are taken in batches and sent concurrently, one sequence per
#: (recipient, patient), so a batch never reorders one patient's deliveries.
DELIVERY_BATCH = 256
DELIVERY_BATCH_WINDOW_S = 0.005


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


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _dead_letter(stage: str, error: Exception, event: Any, record: dict[str, Any]) -> DeadLetter:
    code = error.code if isinstance(error, CarehubError) else "internal-error"
    reason = error.message if isinstance(error, CarehubError) else type(error).__name__
    return DeadLetter(
        stage=stage,
        error_code=code,
        reason=reason,
        source_topic=event.message.topic,
        source_partition=event.message.partition,
        source_offset=event.message.offset,
        failed_at=now_iso(),
        record=record,
    )


def build_app(app_id: str, bootstrap: str, kafka: KafkaSettings, deps: StreamDeps) -> faust.App:
    app = faust.App(
        app_id,
        broker=[f"kafka://{host.strip()}" for host in bootstrap.split(",")],
        store="memory://",
        web_enabled=False,
        autodiscover=False,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        topic_allow_declare=False,
        topic_partitions=kafka.partitions,
        broker_session_timeout=kafka.session_timeout_s,
        broker_heartbeat_interval=min(1.0, kafka.session_timeout_s / 3),
        broker_rebalance_timeout=kafka.session_timeout_s,
        broker_commit_interval=0.5,
    )
    _wire(app, deps)
    return app


def _topic(app: faust.App, name: str) -> Any:
    return app.topic(name, key_serializer="raw", value_serializer="raw")


def _wire(app: faust.App, deps: StreamDeps) -> None:
    t = deps.topics
    inbound, events, deliveries = _topic(app, t.hl7v2_inbound), _topic(app, t.care_events), _topic(app, t.deliveries)
    outcomes, dead = _topic(app, t.delivery_outcomes), _topic(app, t.dead_letters)
    m = deps.metrics

    async def send(topic: Any, key: str, record: Record) -> None:
        await topic.send(key=key.encode(), value=record.to_json())

    async def normalize_agent(stream: Any) -> None:
        async for event in stream.events():
            try:
                inbound_message = InboundMessage.from_json(event.value)
                care_event = normalize(inbound_message)
            except Exception as exc:  # never let one message stop the stream
                m.inc("normalize_failed")
                log.warning("normalize failed: offset=%s error=%s", event.message.offset, type(exc).__name__)
                await send(dead, _key(event), _dead_letter("normalize", exc, event, {"value_b64": _b64(event.value)}))
                continue
            m.inc("normalized", kind=care_event.kind)
            await send(events, inbound_message.patient_key, care_event)

    async def route_agent(stream: Any) -> None:
        async for event in stream.events():
            try:
                care_event = CareEvent.from_json(event.value)
                decision = decide(care_event, deps.routing.current())
                planned = plan_deliveries(care_event, decision, deps.hub, now_iso())
            except Exception as exc:
                m.inc("route_failed")
                log.warning("route failed: offset=%s error=%s", event.message.offset, type(exc).__name__)
                await send(dead, _key(event), _dead_letter("route", exc, event, {"value_b64": _b64(event.value)}))
                continue
            m.inc("routed_events")
            for item in planned:
                m.inc("routed", recipient=item.recipient_id)
                await send(deliveries, item.patient_key, item)

    async def deliver_one_sequence(sequence: list[Delivery]) -> None:
        for item in sequence:
            destination = deps.destinations.get(item.channel)
            if destination is None:
                outcome_status = "failed"
                m.inc("delivery_failed", recipient=item.recipient_id)
                log.error("no connector for channel %s (delivery %s)", item.channel, item.delivery_id)
                continue
            outcome = await deliver(item, destination, deps.retry)
            outcome_status = outcome.status
            m.inc("delivered" if outcome_status == "delivered" else "delivery_failed", recipient=item.recipient_id)
            log.info(
                "delivery %s recipient=%s status=%s attempts=%d",
                item.delivery_id, item.recipient_id, outcome_status, outcome.attempts,
            )
            await send(outcomes, item.patient_key, outcome)

    async def deliver_agent(stream: Any) -> None:
        async for batch in stream.take(DELIVERY_BATCH, within=DELIVERY_BATCH_WINDOW_S):
            sequences: dict[tuple[str, str], list[Delivery]] = defaultdict(list)
            for value in batch:
                try:
                    item = Delivery.from_json(value)
                except Exception as exc:
                    m.inc("delivery_failed", recipient="unknown")
                    log.error("unreadable delivery record: %s", type(exc).__name__)
                    continue
                sequences[(item.recipient_id, item.patient_key)].append(item)
            await asyncio.gather(*(deliver_one_sequence(s) for s in sequences.values()))

    for name, fn, topic in (
        ("normalize", normalize_agent, inbound),
        ("route", route_agent, events),
        ("deliver", deliver_agent, deliveries),
    ):
        app.agent(topic, name=name)(fn)


def _key(event: Any) -> str:
    key = event.key
    return key.decode() if isinstance(key, bytes) else str(key or "")


def _b64(value: bytes | str) -> str:
    import base64

    raw = value if isinstance(value, bytes) else value.encode()
    return base64.b64encode(raw).decode("ascii")


