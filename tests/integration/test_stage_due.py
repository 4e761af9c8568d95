"""A stage with ``due`` (the retry tiers) takes each record once it is due, without blocking its consumer.

On a real broker: partition 0 holds a record due in 2 s, then one due at
once; partition 1 holds one due at once and one due in 100 s. The partition 1
record due now is handled at once (partition 0's wait holds nobody else up),
partition 0's keep their order (the due-now record waits behind its head),
and the far record is taken when the stage's bound (``max_wait_s``) ran out,
not 100 s later. The stage keeps polling meanwhile: the waiting partition is
paused, never slept on (a sleep past the consumer's max poll interval would
cost the group a rebalance).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from carehub.core.settings import KafkaSettings
from carehub.kafka import ensure_topics
from carehub.streams.outbox import Headers
from carehub.streams.stage import Stage

pytestmark = pytest.mark.integration
BOUND_S = 4.0


async def test_records_are_taken_when_due_and_a_wait_holds_up_only_its_partition(broker: str) -> None:
    topic = f"t-due-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(ensure_topics, broker, [topic], 2)
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all")
    await producer.start()
    taken: list[tuple[str, float]] = []

    async def send(
        topic: str, key: bytes, value: bytes, partition: int | None, headers: Headers = ()
    ) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = await producer.send(topic, value=value, key=key, partition=partition)
        return future

    async def handle(records: Sequence[ConsumerRecord]) -> None:
        taken.extend((record.key.decode(), time.time()) for record in records)

    def due(record: ConsumerRecord) -> float:
        return float(record.value)

    stage = Stage("due-test", topic, f"g-{topic}", broker, KafkaSettings(session_timeout_s=3.0), handle, send,
                  due=due, max_wait_s=BOUND_S)  # fmt: skip
    try:
        await stage.start()
        while not stage.assigned:
            await asyncio.sleep(0.1)
        start = time.time()
        for key, partition, wait_s in (("head", 0, 2.0), ("behind", 0, 0.0), ("now", 1, 0.0), ("far", 1, 100.0)):
            await producer.send_and_wait(
                topic, key=key.encode(), value=str(start + wait_s).encode(), partition=partition
            )
        for _ in range(200):
            if len(taken) == 4:
                break
            await asyncio.sleep(0.1)
        at = {key: when - start for key, when in taken}
        assert [key for key, _ in taken if key in ("head", "behind")] == ["head", "behind"], taken
        assert at["now"] < 1.5, f"a due record on another partition is not held up: {at}"
        assert 2.0 <= at["head"] < 3.5 and at["behind"] >= at["head"], at
        assert BOUND_S - 0.5 <= at["far"] < BOUND_S + 2.0, f"a wait ends at the stage's bound: {at}"
        assert stage.batches >= 3, "the stage kept taking batches while a partition waited"
    finally:
        await stage.stop()
        await producer.stop()
