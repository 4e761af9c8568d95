"""A stage process SIGKILLed in the middle of a batch: no committed input is without its output.

The child runs one streams.stage.Stage (a real consumer group on the real
broker, a real producer with acks=all) whose handler sends one output per
input and kills its own process with SIGKILL after a given number of inputs,
in the middle of a batch: some outputs of that batch handed to the producer,
none of them awaited, nothing committed. After each kill the group's
committed offsets are read: every input below them must have its output on
the output topic. A last child runs to the end, and every input has an output.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from carehub.kafka import ensure_topics

pytestmark = [pytest.mark.integration, pytest.mark.slow]
PARTITIONS = 4
TOTAL = 3000
#: inputs each child handles before it kills itself (its batches are 256 records at most)
KILLS = (300, 700, 1100)

CHILD = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from aiokafka import AIOKafkaProducer
    from carehub.core.settings import KafkaSettings
    from carehub.streams import outbox
    from carehub.streams.stage import Stage

    bootstrap, source, target, group, kill_after, total = sys.argv[1:7]
    kill_after, total = int(kill_after), int(total)

    async def main():
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
        await producer.start()
        seen = 0
        loop = asyncio.get_running_loop()
        started, last = loop.time(), [0.0]

        async def send(topic, key, value, partition, headers=()):
            return await producer.send(topic, value=value, key=key, partition=partition, headers=list(headers) or None)

        async def handle(records):
            nonlocal seen
            for record in records:
                box = outbox.CURRENT.get()
                await box.send(target, record.key, b"%d:%d" % (record.partition, record.offset))
                seen += 1
                if seen == kill_after:  # mid-batch: outputs handed over, not awaited, nothing committed
                    os.kill(os.getpid(), signal.SIGKILL)
            last[0] = loop.time()

        stage = Stage("test", source, group, bootstrap, KafkaSettings(session_timeout_s=3.0), handle, send, batch=256)
        await stage.start()
        print("started", flush=True)
        # A child that is to kill itself keeps taking batches until it does (a pause while the group drops
        # the killed member is not the end). The last child runs until idle: 10 s without a batch after its
        # first one (the killed member's session timeout is 3 s; a loaded machine takes longer).
        while loop.time() - started < 150:
            if kill_after > total and last[0] and loop.time() - last[0] >= 10.0:
                break
            await asyncio.sleep(0.5)
        await stage.stop()
        await producer.stop()

    asyncio.run(main())
    """
)


async def _fill(bootstrap: str, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        for n in range(TOTAL):
            await producer.send(topic, key=f"p{n % 50}".encode(), value=str(n).encode())
        await producer.flush()
    finally:
        await producer.stop()


async def _outputs(bootstrap: str, topic: str) -> set[tuple[int, int]]:
    """(input partition, input offset) of every output on the topic."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        found: set[tuple[int, int]] = set()
        behind = {tp for tp in tps if end[tp] > 0}
        while behind:
            behind = {tp for tp in behind if await consumer.position(tp) < end[tp]}
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    partition, offset = r.value.decode().split(":")
                    found.add((int(partition), int(offset)))
        return found
    finally:
        await consumer.stop()


async def _committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offsets (read without joining it)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        return {tp.partition: (await consumer.committed(tp)) or 0 for tp in tps}
    finally:
        await consumer.stop()


async def _child(bootstrap: str, source: str, target: str, group: str, kill_after: int) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, bootstrap, source, target, group, str(kill_after), str(TOTAL),
        stdout=subprocess.PIPE, env={**os.environ},
    )  # fmt: skip
    assert proc.stdout is not None
    assert b"started" in await asyncio.wait_for(proc.stdout.readline(), 60)
    return proc


async def test_a_stage_killed_mid_batch_commits_no_input_without_its_output(broker: str) -> None:
    stamp = f"{os.getpid()}"
    source, target, group = f"stagekill.{stamp}.in", f"stagekill.{stamp}.out", f"stagekill-{stamp}"
    ensure_topics(broker, [source, target], PARTITIONS)
    await _fill(broker, source)
    checked = []
    for kill_after in KILLS:
        proc = await _child(broker, source, target, group, kill_after)
        assert await asyncio.wait_for(proc.wait(), 120) == -9, "the child killed itself mid-batch"
        committed = await _committed(broker, group, source)
        outputs = await _outputs(broker, target)
        missing = [(p, o) for p, upto in committed.items() for o in range(upto) if (p, o) not in outputs]
        assert missing == [], f"committed inputs without their output after a kill: {missing[:5]}"
        checked.append(sum(committed.values()))
    last = await _child(broker, source, target, group, TOTAL + 1)  # never kills itself
    assert await asyncio.wait_for(last.wait(), 180) == 0
    outputs = await _outputs(broker, target)
    assert {(p, o) for p in range(PARTITIONS) for o in range((await _committed(broker, group, source))[p])} <= outputs
    assert len(outputs) == TOTAL, "every input has its output"
    assert checked == sorted(checked) and checked[-1] > 0, "each kill found more committed than the one before"
    print(f"{TOTAL} inputs; committed after each kill: {checked}; every committed input had its output")
