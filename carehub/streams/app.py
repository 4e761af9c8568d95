"""The Faust app: one consumer group whose agents are listed in streams.agents.

normalize: hl7v2.inbound -> care.events (or the dead-letter topic, with reason)
route:     care.events   -> deliveries (one record per recipient x action)
deliver:   deliveries    -> delivery.outcomes (webhook etc., with retries)

Agents hold no state of their own: offsets live in Kafka, so several workers
with the same app id share the partitions, and per-patient order holds
because every record is keyed by the patient key.
"""

from __future__ import annotations

import faust

from carehub.core.kafka_security import KafkaSecurity
from carehub.core.settings import KafkaSettings
from carehub.streams.agents import AGENTS
from carehub.streams.context import AgentContext, StreamDeps
from carehub.streams.faust_tuning import tune_fetch_wait

#: Records buffered ahead of each agent (the consumer pauses its partitions when the buffer is full).
STREAM_BUFFER = 512


def build_app(app_id: str, bootstrap: str, kafka: KafkaSettings, deps: StreamDeps) -> faust.App:
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
    ctx = AgentContext(app, deps)
    for module in AGENTS:
        module.register(app, ctx)
    return app


def changelog_topics(app: faust.App) -> list[str]:
    """The changelog topics of the app's tables (to create before start: topics are not auto-declared)."""
    return [table.changelog_topic.get_topic_name() for table in app.tables.values()]
