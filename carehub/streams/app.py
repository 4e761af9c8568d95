"""A stream worker: the hot path as plain consumer-group stages, the rest as Faust agents.

Stages (streams.stage: batch, outputs acknowledged, then commit), each its own
consumer group ``<app id>-<stage>``:

normalize: hl7v2.inbound -> care.events (or the dead-letter topic, with reason)
route:     care.events   -> deliveries (one record per recipient x action; state in streams.store)
deliver:   deliveries    -> delivery.outcomes (webhook etc., with retries)

Faust agents (the app's own group, ``<app id>``; listed in streams.agents):
the retry tiers, FHIR inbound notifications (with their Faust tables) and the
audit trail. Each of their sends is acknowledged before the agent takes its
next record (streams.outbox).

Nothing holds state only in memory: offsets and tables live in Kafka, so
several workers with the same app id share the partitions, and per-patient
order holds because every record is keyed by the patient key.
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust

from carehub.core.kafka_security import KafkaSecurity
from carehub.core.settings import KafkaSettings
from carehub.streams.agents import AGENTS, deliver, normalize, route
from carehub.streams.context import AgentContext, StreamDeps
from carehub.streams.faust_tuning import tune_fetch_wait
from carehub.streams.stage import Stage

#: Records buffered ahead of each agent (the consumer pauses its partitions when the buffer is full).
STREAM_BUFFER = 512
#: Records a stage takes at most per batch (one commit per batch).
STAGE_BATCH = 256


def build_app(app_id: str, bootstrap: str, kafka: KafkaSettings, deps: StreamDeps) -> faust.App:
    """The Faust side of a worker (``StreamWorker`` adds the stages)."""
    return StreamWorker(app_id, bootstrap, kafka, deps).app


def _faust_app(app_id: str, bootstrap: str, kafka: KafkaSettings) -> faust.App:
    app = faust.App(
        app_id,
        broker=[f"kafka://{host.strip()}" for host in bootstrap.split(",")],
        store="memory://",
        web_enabled=False,
        autodiscover=False,
        producer_acks=-1,
        producer_max_request_size=kafka.max_record_bytes,
        # Records fetched ahead per stream: Faust's 4096 is up to 4 GB per stream with 1 MB records.
        stream_buffer_maxsize=STREAM_BUFFER,
        consumer_auto_offset_reset="earliest",
        topic_allow_declare=False,
        topic_partitions=kafka.partitions,
        broker_session_timeout=kafka.session_timeout_s,
        broker_heartbeat_interval=min(1.0, kafka.session_timeout_s / 3),
        broker_rebalance_timeout=kafka.session_timeout_s,
        broker_commit_interval=1.0,
        stream_processing_timeout=kafka.stall_report_s,
        broker_commit_livelock_soft_timeout=kafka.stall_report_s,
        broker_credentials=KafkaSecurity.from_settings(kafka).faust_credentials(),
    )
    tune_fetch_wait(app, kafka.fetch_max_wait_ms)
    return app


#: The stages, in pipeline order; each is the consumer group ``<app id>-<stage>``.
STAGES = ("normalize", "route", "deliver")


def stage_groups(app_id: str) -> list[str]:
    """Every consumer group a stream worker joins: the stages' and the Faust agents' (``app_id``)."""
    return [*(f"{app_id}-{name}" for name in STAGES), app_id]


class StreamWorker:
    """One stream worker process's streams: the stages and the Faust app, started and stopped together."""

    def __init__(self, app_id: str, bootstrap: str, kafka: KafkaSettings, deps: StreamDeps) -> None:
        self.app = _faust_app(app_id, bootstrap, kafka)
        self.ctx = ctx = AgentContext(self.app, deps)
        for module in AGENTS:
            module.register(self.app, ctx)
        security = KafkaSecurity.from_settings(kafka)
        self.route_state = state = route.RouteState(ctx, app_id)
        self._owned: set[int] = set()

        async def route_assigned(partitions: set[int]) -> None:
            lost, gained = self._owned - partitions, partitions - self._owned
            for store in state.stores:
                store.drop(lost)
                await store.recover(bootstrap, gained, security=security)
            self._owned = set(partitions)

        topics = deps.topics

        def stage(name: str, topic: str, handler: Any, **extra: Any) -> Stage:
            made = Stage(name, topic, f"{app_id}-{name}", bootstrap, kafka, handler, ctx.produce,
                         batch=STAGE_BATCH, security=security, **extra)  # fmt: skip
            ctx.highwaters[name] = made.highwater
            return made

        self.stages = [
            stage("normalize", topics.hl7v2_inbound, normalize.handler(ctx)),
            stage("route", topics.care_events, route.handler(ctx, state), on_assigned=route_assigned),
            stage("deliver", topics.deliveries, deliver.handler(ctx)),
        ]

    def compacted_topics(self) -> list[str]:
        """The topics holding tables (to create, compacted, before start: topics are not auto-declared)."""
        return changelog_topics(self.app) + [store.topic for store in self.route_state.stores]

    async def start(self) -> None:
        await self.app.start()  # the producer every stage sends with
        for stage in self.stages:
            await stage.start()

    async def stop(self, grace_s: float) -> None:
        """Stop the stages (each finishes its batch in hand within ``grace_s``), then the Faust app."""
        await asyncio.gather(*(stage.stop(grace_s) for stage in self.stages))
        await self.app.stop()  # type: ignore[attr-defined]


def changelog_topics(app: faust.App) -> list[str]:
    """The changelog topics of the app's tables (to create before start: topics are not auto-declared)."""
    return [table.changelog_topic.get_topic_name() for table in app.tables.values()]
