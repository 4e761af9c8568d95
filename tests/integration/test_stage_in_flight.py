"""A stage with several batches in hand (``in_flight``, the deliver stage) commits them only in order.

On a real broker, one partition: a batch held up by its handler does not hold up the batches taken
after it (they are handled meanwhile), but nothing past it is committed until it is done; then every
offset is. A batch whose handler raises, with later batches in hand, commits none of them: the
partition goes back to the first record not committed and everything from there is taken again, in
order (a repeat, never a gap).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from carehub.consumer_lag import committed_offsets
from carehub.core.settings import KafkaSettings
from carehub.kafka import ensure_topics
from carehub.streams.outbox import Headers
from carehub.streams.stage import Stage

pytestmark = pytest.mark.integration


async def _eventually(check: Any, timeout_s: float = 30.0) -> None:
    for _ in range(int(timeout_s / 0.1)):
        if await check() if asyncio.iscoroutinefunction(check) else check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached in time")


async def _committed(broker: str, group: str, topic: str) -> int:
    found = await committed_offsets(broker, group, [TopicPartition(topic, 0)])
    return found.get(TopicPartition(topic, 0), 0)


class _Run:
    """A one-partition topic, a producer, and a stage with three batches in hand."""

    def __init__(self, broker: str, handle: Any) -> None:
        self.broker = broker
        self.topic = f"t-inflight-{uuid.uuid4().hex[:8]}"
        self.group = f"g-{self.topic}"
        self.producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all")
        self.stage = Stage("inflight-test", self.topic, self.group, broker, KafkaSettings(session_timeout_s=3.0),
                           handle, self.send, in_flight=3)  # fmt: skip

    async def send(
        self, topic: str, key: bytes, value: bytes, partition: int | None, headers: Headers = ()
    ) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = await self.producer.send(topic, value=value, key=key, partition=partition)
        return future

    async def start(self) -> None:
        await asyncio.to_thread(ensure_topics, self.broker, [self.topic], 1)
        await self.producer.start()
        await self.stage.start()
        await _eventually(lambda: bool(self.stage.assigned))

    async def put(self, *keys: str) -> None:
        for key in keys:
            await self.producer.send_and_wait(self.topic, key=key.encode(), value=b"x", partition=0)

    async def stop(self) -> None:
        await self.stage.stop()
        await self.producer.stop()


async def test_a_slow_batch_holds_back_the_commits_after_it_not_their_handling(broker: str) -> None:
    handled: list[str] = []
    release = asyncio.Event()

    async def handle(records: Sequence[ConsumerRecord]) -> None:
        keys = [r.key.decode() for r in records]
        if "slow" in keys:
            await release.wait()
        handled.extend(keys)

    run = _Run(broker, handle)
    try:
        await run.start()
        await run.put("slow")
        await asyncio.sleep(1.0)  # taken alone: its batch is in hand, waiting
        await run.put("a", "b")
        await _eventually(lambda: "a" in handled and "b" in handled)
        assert "slow" not in handled, "the later batches were handled while the slow one was in hand"
        await asyncio.sleep(0.5)
        assert await _committed(broker, run.group, run.topic) == 0, "nothing past the slow batch is committed"
        release.set()
        await _eventually(lambda: "slow" in handled)

        async def all_committed() -> bool:
            return await _committed(broker, run.group, run.topic) == 3

        await _eventually(all_committed)
    finally:
        release.set()
        await run.stop()


async def test_a_batch_that_raises_sends_back_every_batch_after_it(broker: str) -> None:
    handled: list[str] = []
    failed = asyncio.Event()
    hold_bad = asyncio.Event()

    async def handle(records: Sequence[ConsumerRecord]) -> None:
        keys = [r.key.decode() for r in records]
        if "bad" in keys and not failed.is_set():
            await hold_bad.wait()  # the later batches are taken (and handled) meanwhile
            failed.set()
            raise RuntimeError("a bug in the handler")
        handled.extend(keys)

    run = _Run(broker, handle)
    try:
        await run.start()
        await run.put("first")
        await _eventually(lambda: handled == ["first"])
        await run.put("bad")
        await asyncio.sleep(1.0)
        await run.put("after-1", "after-2")
        await _eventually(lambda: "after-2" in handled)
        hold_bad.set()

        async def all_committed() -> bool:
            return await _committed(broker, run.group, run.topic) == 4

        await _eventually(all_committed)
        again = handled[handled.index("after-2") + 1 :]
        assert again == ["bad", "after-1", "after-2"], f"taken again from the failed batch, in order: {handled}"
    finally:
        hold_bad.set()
        await run.stop()
