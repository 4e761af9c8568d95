"""A stage hands no record of a newly assigned partition to its handler before ``on_assigned`` has finished.

``on_assigned`` is where the route stage recovers a partition's tables (patient signals, visits seen,
the Part 2 status that keeps a program visit's later events labelled). aiokafka sets the assignment,
and starts fetching for it, before it awaits the rebalance listener: a backlog waiting on the topic
was routed while the tables were still being read, without their rows (a Part 2 visit's A08 went out
unlabelled). Here the backlog is on the topic before the stage starts and the recovery takes a while.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from carehub.core.settings import KafkaSettings
from carehub.kafka import ensure_topics
from carehub.streams.stage import Stage
from tests.integration.conftest import eventually

pytestmark = pytest.mark.integration
BACKLOG = 40
RECOVERY_S = 1.5


async def _nothing_is_sent(topic: str, key: bytes, value: bytes, partition: int | None) -> Any:
    raise AssertionError(f"the handler sends nothing (a send to {topic})")


async def test_records_waiting_on_the_topic_are_handled_only_after_the_partitions_are_recovered(broker: str) -> None:
    topic, group = f"stageassign.{os.getpid()}.in", f"stageassign-{os.getpid()}"
    ensure_topics(broker, [topic], 4)
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all")
    await producer.start()
    try:
        for n in range(BACKLOG):
            await producer.send(topic, key=f"p{n % 8}".encode(), value=str(n).encode())
        await producer.flush()
    finally:
        await producer.stop()

    recovered: set[int] = set()
    early: list[tuple[int, int]] = []
    handled: list[int] = []

    async def on_assigned(partitions: set[int]) -> None:
        await asyncio.sleep(RECOVERY_S)  # reading the partitions' changelogs
        recovered.update(partitions)

    async def handle(records: Sequence[ConsumerRecord]) -> None:
        early.extend((r.partition, r.offset) for r in records if r.partition not in recovered)
        handled.extend(int(r.value) for r in records)

    stage = Stage("assign", topic, group, broker, KafkaSettings(session_timeout_s=3.0), handle, _nothing_is_sent,
                  on_assigned=on_assigned)  # fmt: skip
    await stage.start()
    try:
        await eventually(lambda: len(handled) >= BACKLOG, timeout_s=60)
    finally:
        await stage.stop()
    assert recovered == {0, 1, 2, 3}
    assert early == [], f"records handled before their partition was recovered: {early[:5]}"
    assert sorted(handled) == list(range(BACKLOG))
