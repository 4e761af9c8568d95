"""One stream hop two ways on the same records: a Faust agent vs a plain aiokafka consumer group.

Each reads the same ``count`` records (the bench A01 wrapped like an inbound record, ~2 KB) from
one input topic and writes each to an output topic, as a stage does. The aiokafka side commits
by hand after its outputs are acknowledged (acks=all), batch by batch; the Faust side is
configured like ``streams.app.build_app`` (acks=-1, fetch wait tuned, commit interval 1 s).
Figures are records per wall second and per CPU-second of this process (Faust's consumer thread
included). Printed, never asserted.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import faust
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.messages import message
from carehub.kafka import ensure_topics
from carehub.streams.faust_tuning import tune_fetch_wait

PARTITIONS = 4


@dataclass
class FirstRecord:
    """Wall and CPU clocks when the first record arrived: steady state excludes start and group join."""

    wall: float = 0.0
    cpu: float = 0.0
    seen: bool = field(default=False)

    def mark(self) -> None:
        if not self.seen:
            self.seen, self.wall, self.cpu = True, time.perf_counter(), time.process_time()


async def _fill(bootstrap: str, topic: str, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        for n in range(count):
            value = orjson.dumps({"schema": "bench/1.0", "n": n, "raw": message(n).decode()})
            await producer.send(topic, key=f"p{n % 500}".encode(), value=value)
        await producer.flush()
    finally:
        await producer.stop()


async def _aiokafka_hop(bootstrap: str, source: str, target: str, count: int, group: str, first: FirstRecord) -> None:
    consumer = AIOKafkaConsumer(
        source, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
        auto_offset_reset="earliest", fetch_max_wait_ms=10, max_poll_records=500,
    )  # fmt: skip
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1)
    await consumer.start()
    await producer.start()
    done = 0
    try:
        while done < count:
            batches = await consumer.getmany(timeout_ms=500)
            sent = []
            for records in batches.values():
                for record in records:
                    first.mark()
                    inbound = orjson.loads(record.value)
                    sent.append(await producer.send(target, key=record.key, value=orjson.dumps(inbound)))
            if sent:
                await asyncio.gather(*sent)  # outputs durable, then commit what produced them
                await consumer.commit()
                done += len(sent)
    finally:
        await consumer.stop()
        await producer.stop()


async def _faust_hop(bootstrap: str, source: str, target: str, count: int, app_id: str, first: FirstRecord) -> None:
    app = faust.App(
        app_id, broker=f"kafka://{bootstrap}", store="memory://", web_enabled=False, autodiscover=False,
        producer_acks=-1, consumer_auto_offset_reset="earliest", topic_allow_declare=False,
        topic_partitions=PARTITIONS, broker_commit_interval=1.0, stream_buffer_maxsize=512,
    )  # fmt: skip
    tune_fetch_wait(app, 10)
    done = asyncio.Event()
    seen = 0
    source_topic = app.topic(source, key_serializer="raw", value_serializer="raw")
    target_topic = app.topic(target, key_serializer="raw", value_serializer="raw")

    async def hop(stream: Any) -> None:
        nonlocal seen
        async for event in stream.events():
            first.mark()
            inbound = orjson.loads(event.value)
            await target_topic.send(key=event.key, value=orjson.dumps(inbound))
            seen += 1
            if seen >= count:
                done.set()

    app.agent(source_topic, name="hop")(hop)
    await app.start()
    try:
        await asyncio.wait_for(done.wait(), 600)
        await app.producer.flush()
    finally:
        await app.stop()


async def bench_consumers(bootstrap: str, quick: bool) -> list[str]:
    count = 5000 if quick else 20000
    stamp = str(int(time.time()))
    lines = [f"one stream hop, {count} records of ~2 KB in -> out (same records for both), {PARTITIONS} partitions"]
    for label, hop in (("plain aiokafka, manual commits", _aiokafka_hop), ("Faust agent", _faust_hop)):
        source, target = f"bench.cmp.{stamp}.{hop.__name__}.in", f"bench.cmp.{stamp}.{hop.__name__}.out"
        ensure_topics(bootstrap, [source, target], PARTITIONS)
        await _fill(bootstrap, source, count)
        first = FirstRecord()
        wall = time.perf_counter()
        await hop(bootstrap, source, target, count, f"bench-cmp-{stamp}-{hop.__name__}", first)
        end_wall, end_cpu = time.perf_counter(), time.process_time()
        steady_wall, steady_cpu = end_wall - first.wall, end_cpu - first.cpu
        lines.append(
            f"  {label:<32} {count / steady_wall:>8,.0f} records/s   {count / steady_cpu:>8,.0f} records per CPU-second"
            f"   (first record to last; start and group join took {first.wall - wall:.1f} s more)"
        )
    return lines
