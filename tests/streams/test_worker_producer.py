"""The stream worker's one producer (streams.app.producer_options)."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from carehub.core.kafka_security import PLAINTEXT
from carehub.core.settings import KafkaSettings
from carehub.streams.app import producer_options


async def test_a_partitions_batch_takes_many_deliveries_so_sends_do_not_queue_behind_round_trips() -> None:
    """A delivery record is 10-25 KB. With aiokafka's default 16 KB batch, a second one for the same partition
    (the same patient) waited until the first's batch had left, and with one request in flight per broker
    every route batch's sends queued behind broker round trips (docs/benchmarks.md, session 6)."""
    kafka = KafkaSettings()
    producer = AIOKafkaProducer(**producer_options("127.0.0.1:9", kafka, PLAINTEXT))
    batch = producer.create_batch()
    delivery = b"x" * 25_000
    taken = [batch.append(key=b"RGH|MRN1", value=delivery, timestamp=None) for _ in range(20)]
    assert all(meta is not None for meta in taken), "twenty 25 KB deliveries share one partition's batch"
    assert batch.append(key=b"k", value=b"x" * kafka.max_record_bytes, timestamp=None) is None, "bounded"
    await producer.client.close()
