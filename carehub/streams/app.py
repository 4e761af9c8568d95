"""A stream worker: every stream a plain aiokafka consumer-group stage, all sending with one producer.

Stages (streams.stage: batch, outputs acknowledged, then commit), each its own
consumer group ``<app id>-<stage>``:

normalize:    hl7v2.inbound      -> care.events (or the dead-letter topic, with reason)
route:        care.events        -> deliveries, audit.events (per-patient state in streams.store)
deliver:      deliveries         -> delivery.outcomes, a retry topic or the delivery dead letters
retry-N:      deliveries.retry.N -> the same, each record once it is due (one stage per backoff tier)
audit:        audit.events       -> the journal's audit table (with a journal)
careplan:     task.events        -> deliveries: CarePlan updates (with a journal)
fhir-inbound: fhir.inbound       -> care.events (subscription state, Encounter snapshots; with subscriptions)

Every output goes through the worker's one ``AIOKafkaProducer`` (acks=all,
``kafka.max_record_bytes``, ``kafka.linger_ms``, the security every client
has). Earlier workers ran the last four as Faust agents in the group
``<app id>``; a stage whose group has no offsets yet starts where that group
stopped (``Stage(upgrade_from=...)``), and the tables are read from the
changelogs the Faust tables wrote.

Nothing holds state only in memory: offsets and tables live in Kafka, so
several workers with the same app id share the partitions, and per-patient
order holds because every record is keyed by the patient key.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiokafka import AIOKafkaProducer

from carehub.core.kafka_security import KafkaSecurity
from carehub.core.settings import KafkaSettings
from carehub.core.topics import RETRY_TIERS
from carehub.partitioner import KeyPartitioner
from carehub.streams.agents import audit, careplan, deliver, fhir_inbound, retry, route
from carehub.streams.context import AgentContext, StreamDeps
from carehub.streams.outbox import Headers
from carehub.streams.stage import Stage
from carehub.streams.store import ChangelogStore, following

#: Records a stage takes at most per batch (one commit per batch).
STAGE_BATCH = 256
#: How long a fetch of a stage off the latency path waits for records (ms): the retry tiers (whose records
#: wait seconds for their due time anyway), the audit trail and CarePlan updates. The hot path
#: (normalize, route, deliver, FHIR inbound) waits ``kafka.fetch_max_wait_ms``; each idle stage polls the
#: broker once per wait, and the embedded broker holds an empty fetch its whole wait (docs/benchmarks.md).
SIDE_FETCH_WAIT_MS = 250

#: Every stage a worker may run, in pipeline order; each is the consumer group ``<app id>-<stage>``.
STAGES = (
    "route",
    "deliver",
    *(f"retry-{tier}" for tier in range(1, RETRY_TIERS + 1)),
    "audit",
    "careplan",
    "fhir-inbound",
)


def stage_groups(app_id: str) -> list[str]:
    """Every consumer group a stream worker may join (one per stage)."""
    return [f"{app_id}-{name}" for name in STAGES]


def producer_options(bootstrap: str, kafka: KafkaSettings, security: KafkaSecurity) -> dict[str, Any]:
    """The worker's producer: every output acknowledged by all in-sync replicas before a stage commits.

    A partition's batch holds up to a record limit of records (``max_batch_size``; aiokafka's default is
    16 KB): with less, a second delivery (10-25 KB) for the same partition waited for the first's batch to
    leave, and the producer keeps one request in flight per broker, so a stage's sends queued behind broker
    round trips (docs/benchmarks.md)."""
    return dict(bootstrap_servers=bootstrap, acks="all", max_request_size=kafka.max_record_bytes,
                max_batch_size=kafka.max_record_bytes, linger_ms=kafka.linger_ms, partitioner=KeyPartitioner(),
                **security.aiokafka())  # fmt: skip


class StreamWorker:
    """One stream worker process's streams: the stages and their producer, started and stopped together."""

    def __init__(self, app_id: str, bootstrap: str, kafka: KafkaSettings, deps: StreamDeps) -> None:
        security = KafkaSecurity.from_settings(kafka)
        self._producer_options = producer_options(bootstrap, kafka, security)
        self._producer: AIOKafkaProducer | None = None  # created on start (inside the running loop)
        self.ctx = ctx = AgentContext(deps, self._produce, kafka.max_record_bytes)
        topics = deps.topics

        def stage(name: str, topic: str | tuple[str, ...], handler: Any, **extra: Any) -> Stage:
            extra.setdefault("batch", STAGE_BATCH)
            made = Stage(name, topic, f"{app_id}-{name}", bootstrap, kafka, handler, ctx.produce,
                         security=security, upgrade_from=app_id, **extra)  # fmt: skip
            ctx.highwaters[name] = made.highwater
            return made

        self.route_state = state = route.RouteState(ctx, app_id)
        route_assigned = following(state.stores, bootstrap, security=security)
        self.stages = [
            # normalize and route, one hop (streams.agents.normalize); inbound partitions never routed by this
            # group start where the normalize stage of earlier workers stopped
            stage(
                "route",
                (topics.hl7v2_inbound, topics.care_events),
                route.handler(ctx, state),
                on_assigned=route_assigned,
                take_over={topics.hl7v2_inbound: f"{app_id}-normalize"},
            ),
            stage("deliver", topics.deliveries, deliver.handler(ctx), in_flight=deliver.IN_FLIGHT),
        ]
        ctx.highwaters["normalize"] = self.stages[0].highwater  # the inbound records' lag (stage_done "normalize")
        side = {"fetch_wait_ms": max(kafka.fetch_max_wait_ms, SIDE_FETCH_WAIT_MS)}  # off the latency path
        for tier in range(1, RETRY_TIERS + 1):
            self.stages.append(stage(f"retry-{tier}", topics.delivery_retry(tier), retry.handler(ctx, tier),
                                     due=retry.due_at, max_wait_s=deps.retry.tier_wait_s(tier), **side))  # fmt: skip
        if deps.journal is not None:  # no journal: no audit trail or CarePlans to keep
            self.stages.append(stage("audit", topics.audit_events, audit.handler(ctx, deps.journal), batch=audit.BATCH,
                                     **side))  # fmt: skip
            self.stages.append(stage("careplan", topics.task_events, careplan.handler(ctx, deps.journal), **side))
        self.tables: list[ChangelogStore] = list(state.stores)
        self.heartbeat: fhir_inbound.Heartbeat | None = None
        subscriptions = deps.subscriptions
        if subscriptions is not None and subscriptions.config.enabled():
            inbound = fhir_inbound.InboundTables(ctx)
            self.tables += inbound.stores
            fhir = stage("fhir-inbound", topics.fhir_inbound, fhir_inbound.handler(ctx, subscriptions, inbound),
                         on_assigned=following(inbound.stores, bootstrap, security=security))  # fmt: skip
            self.stages.append(fhir)
            self.heartbeat = fhir_inbound.Heartbeat(ctx, subscriptions, leads=lambda: 0 in fhir.assigned)

    async def _produce(
        self, topic: str, key: bytes, value: bytes, partition: int | None, headers: Headers = ()
    ) -> asyncio.Future[Any]:
        """Hand one record to the producer; the future resolves when the broker acknowledged it (acks=all)."""
        if self._producer is None:
            raise RuntimeError("the stream worker is not started")
        future: asyncio.Future[Any] = await self._producer.send(
            topic, value=value, key=key, partition=partition, headers=list(headers) or None
        )
        return future

    def compacted_topics(self) -> list[str]:
        """The topics holding tables (to create, compacted, before start: topics are not auto-declared)."""
        return [store.topic for store in self.tables]

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(**self._producer_options)
        await self._producer.start()
        try:  # together: each start waits for its group's join (half a session timeout on some brokers)
            await asyncio.gather(*(stage.start() for stage in self.stages))
        except BaseException:
            await self.stop(0.0)
            raise
        if self.heartbeat is not None:
            self.heartbeat.start()

    async def stop(self, grace_s: float) -> None:
        """Stop the stages (each finishes its batch in hand within ``grace_s``), then flush the producer."""
        if self.heartbeat is not None:
            await self.heartbeat.stop()
        await asyncio.gather(*(stage.stop(grace_s) for stage in self.stages))
        if self._producer is not None:
            with contextlib.suppress(Exception):  # the broker gone: unsent outputs were never committed
                await asyncio.wait_for(self._producer.stop(), max(1.0, grace_s))
            self._producer = None
