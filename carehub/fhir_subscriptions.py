"""Wiring for FHIR Subscriptions: readers for the streams, routes for the hub, the state for the CLI."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiokafka import AIOKafkaConsumer, TopicPartition

from carehub.adapters.resthook.receiver import Publisher, RefusalObserver, RestHookReceiver
from carehub.connectors.fhir_source import AsyncFhirSource, FhirSource
from carehub.core.errors import BrokerError
from carehub.core.kafka_security import PLAINTEXT, KafkaSecurity
from carehub.streams.subscriptions.config import SourceConfig, SubscriptionsConfig
from carehub.streams.subscriptions.deps import SubscriptionDeps
from carehub.streams.subscriptions.state import SubscriptionState, state_key


def source_client(source: SourceConfig) -> FhirSource:
    return FhirSource(source.base_url, source.auth, timeout_s=source.timeout_s)


def subscription_deps(config: SubscriptionsConfig) -> SubscriptionDeps | None:
    if not config.enabled():
        return None
    readers = {s.name: AsyncFhirSource(source_client(s)) for s in config.sources}
    return SubscriptionDeps(config=config, readers=readers)


def resthook_routes(
    publisher: Publisher | None, config: SubscriptionsConfig, on_refusal: RefusalObserver | None = None
) -> list[web.RouteDef]:
    """``POST /fhir/notify/{source}/{subscription}`` when this process ingests and sources are configured."""
    if publisher is None or not config.sources:
        return []
    return RestHookReceiver(publisher, config, on_refusal=on_refusal).routes()


async def read_states(
    bootstrap: str, topic: str, timeout_s: float = 10.0, *, security: KafkaSecurity = PLAINTEXT
) -> dict[str, SubscriptionState]:
    """The latest state of every subscription, read from the compacted state topic (the table's changelog)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, request_timeout_ms=10000, **security.aiokafka()
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not assigned:
            return {}
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)
        latest: dict[str, SubscriptionState] = {}
        deadline = asyncio.get_running_loop().time() + timeout_s
        while [tp for tp in assigned if await consumer.position(tp) < ends[tp]]:
            if asyncio.get_running_loop().time() > deadline:
                raise BrokerError(f"reading {topic} took longer than {timeout_s:.0f}s")
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    if record.key is not None and record.value is not None:
                        latest[record.key.decode()] = SubscriptionState.from_json(record.value)
        return latest
    finally:
        await consumer.stop()


def health_rows(config: SubscriptionsConfig, states: dict[str, SubscriptionState]) -> list[dict[str, object]]:
    """One row per enabled subscription: health, last event number and heartbeat, gaps (status, console)."""
    out: list[dict[str, object]] = []
    for source, sub in config.enabled():
        state = states.get(state_key(source.name, sub.name)) or SubscriptionState(source.name, sub.name)
        out.append(
            {
                "source": source.name,
                "subscription": sub.name,
                "health": state.health,
                "last_event_number": state.last_event_number,
                "last_heartbeat_at": state.last_heartbeat_at,
                "last_notification_at": state.last_notification_at,
                "missing": len(state.missing),
                "recovered": state.recovered,
                "reason": state.reason,
            }
        )
    return out
