"""One stream hop as a plain aiokafka consumer group, the way a stage runs it (streams.stage).

It reads ``count`` records (the bench A01 wrapped like an inbound record, ~2 KB) from one input
topic and writes each to an output topic, committing by hand after its outputs are acknowledged
(acks=all), batch by batch. Figures are records per wall second and per CPU-second of this
process. Printed, never asserted.

The same hop as a Faust agent, the other side of the comparison in docs/benchmarks.md ("One
stream hop"), left with Faust (no longer a dependency); it is in this file at commit d1e65f2.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.messages import message
from carehub.kafka import ensure_topics

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


async def bench_consumers(bootstrap: str, quick: bool) -> list[str]:
    count = 5000 if quick else 20000
    stamp = str(int(time.time()))
    lines = [f"one stream hop, {count} records of ~2 KB in -> out, {PARTITIONS} partitions"]
    for label, hop in (("plain aiokafka, manual commits", _aiokafka_hop),):
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
