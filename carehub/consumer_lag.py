"""Consumer lag of the hub's consumer groups, as the cluster sees it (every worker of a group at once).

For each group: the offsets it committed (OffsetFetch) against the partitions' end offsets, summed per
topic. This is the group's lag, whichever workers hold its partitions; the per-process
``carehub_consumer_lag`` gauges on /metrics are each worker's own view of the partitions it holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from carehub.core.errors import BrokerError
from carehub.core.kafka_security import PLAINTEXT, KafkaSecurity


@dataclass(frozen=True, slots=True)
class GroupLag:
    group: str
    topic: str
    partitions: int
    behind: int

    def to_dict(self) -> dict[str, object]:
        return {"group": self.group, "topic": self.topic, "partitions": self.partitions, "behind": self.behind}


def _group_reader(bootstrap: str, group: str, security: KafkaSecurity) -> AIOKafkaConsumer:
    """A consumer that names ``group`` but never subscribes: it never joins the group (no rebalance of
    the workers) and only reads what they committed."""
    return AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                            request_timeout_ms=5000, **security.aiokafka())  # fmt: skip


async def _committed(consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
    return {tp: offset for tp in partitions if (offset := await consumer.committed(tp)) is not None}


async def committed_offsets(
    bootstrap: str, group: str, partitions: list[TopicPartition], *, security: KafkaSecurity = PLAINTEXT
) -> dict[TopicPartition, int]:
    """The offsets ``group`` committed on ``partitions``; a partition it committed nothing on is left out."""
    consumer = _group_reader(bootstrap, group, security)
    try:
        await consumer.start()
        return await _committed(consumer, partitions)
    except (KafkaError, OSError) as exc:
        raise BrokerError(f"cannot read the offsets of consumer group {group}: {type(exc).__name__}") from exc
    finally:
        await consumer.stop()


async def group_lag(
    bootstrap: str, groups: list[str], topic_prefix: str, *, security: KafkaSecurity = PLAINTEXT
) -> list[GroupLag]:
    """Records behind per (group, topic) of the topics named ``topic_prefix``..., from committed and end offsets;
    a group that committed nothing on a topic has no row for it (each group's offsets read by
    ``_group_reader``, without joining it)."""
    rows: list[GroupLag] = []
    for group in groups:
        consumer = _group_reader(bootstrap, group, security)
        try:
            await consumer.start()
            partitions = [
                TopicPartition(topic, p) for topic in sorted(await consumer.topics()) if topic.startswith(topic_prefix)
                for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]  # fmt: skip
            committed = await _committed(consumer, partitions)
            ends = await consumer.end_offsets(list(committed)) if committed else {}
        except (KafkaError, OSError) as exc:
            raise BrokerError(f"cannot read the offsets of consumer group {group}: {type(exc).__name__}") from exc
        finally:
            await consumer.stop()
        per_topic: dict[str, list[int]] = {}
        for tp, offset in committed.items():
            per_topic.setdefault(tp.topic, []).append(max(0, int(ends.get(tp, offset)) - offset))
        rows += [GroupLag(group, topic, len(lags), sum(lags)) for topic, lags in sorted(per_topic.items())]
    return rows
