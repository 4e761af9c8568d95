"""Per-partition state on a compacted topic, for a stage run by streams.stage.

The state of a stage's input partition ``p`` (rows keyed like the input:
patient key, subscription, Encounter) lives in partition ``p`` of its
compacted changelog topic, encoded as the Faust tables of earlier workers
did (the UTF-8 key, the JSON document as the value, on the input's
partition), so a changelog written by a Faust worker reads back unchanged.
When a partition is assigned, its rows are read from the beginning of the
changelog partition to its end before the stage takes an input from it
(``recover``); when it is revoked its rows are dropped (the next owner reads
them from the changelog).

Writes made while a batch runs are *staged*: reads see them, nothing is sent.
``settle()`` applies them and sends them to the changelog; a stage settles
only after the batch's outputs are acknowledged (streams.agents.route and
fhir_inbound), so
the changelog is never ahead of the outputs: a worker killed between the two
takes the batch again with the state it had before it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from carehub.core.kafka_security import PLAINTEXT, KafkaSecurity

log = logging.getLogger(__name__)
#: Changelog send: (topic, key, value, partition) -> None once it is on its way (an outbox send).
ChangelogSend = Callable[[str, bytes, bytes, int | None], Awaitable[None]]
#: A stage's assignment callback: the partitions it holds now.
Assigned = Callable[[set[int]], Awaitable[None]]


class ChangelogStore:
    """JSON documents by text key for the partitions this worker owns, backed by ``topic``."""

    def __init__(self, name: str, topic: str) -> None:
        self.name = name
        self.topic = topic
        self._rows: dict[str, bytes] = {}
        self._keys: dict[int, set[str]] = {}  # partition -> keys read or written there
        self._staged: dict[str, tuple[bytes, int]] = {}
        self.partition = 0  # where the batch's current input comes from (set by the stage per record)

    def get(self, key: str) -> Any:
        """The document stored under ``key`` (staged writes first), or None."""
        staged = self._staged.get(key)
        raw = staged[0] if staged is not None else self._rows.get(key)
        return orjson.loads(raw) if raw else None

    def put(self, key: str, document: Any) -> None:
        """Stage ``document`` under ``key``, on the partition of the current input."""
        self._staged[key] = (orjson.dumps(document), self.partition)

    def discard_staged(self) -> None:
        self._staged.clear()

    async def settle(self, send: ChangelogSend) -> int:
        """Apply the staged writes and send them to the changelog; how many there were."""
        staged, self._staged = self._staged, {}
        for key, (value, partition) in staged.items():
            self._rows[key] = value
            self._keys.setdefault(partition, set()).add(key)
            await send(self.topic, key.encode(), value, partition)
        return len(staged)

    def drop(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            for key in self._keys.pop(partition, set()):
                self._rows.pop(key, None)

    def rows(self) -> int:
        return len(self._rows)

    def _apply(self, partition: int, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        text = key.decode("utf-8", "replace")
        if value is None:
            self._rows.pop(text, None)
            return
        self._rows[text] = value
        self._keys.setdefault(partition, set()).add(text)

    async def recover(self, bootstrap: str, partitions: Iterable[int], *, security: KafkaSecurity = PLAINTEXT) -> int:
        """Read the changelog of ``partitions`` from the beginning to its end; the records read."""
        wanted = sorted(set(partitions))
        self.drop(wanted)
        if not wanted:
            return 0
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                    fetch_max_wait_ms=50, **security.aiokafka())  # fmt: skip
        await consumer.start()
        read = 0
        try:
            tps = [TopicPartition(self.topic, p) for p in wanted]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            end = await consumer.end_offsets(tps)
            behind = {tp for tp in tps if end[tp] > 0}
            while behind:
                for tp, records in (await consumer.getmany(*behind, timeout_ms=200)).items():
                    for record in records:
                        self._apply(tp.partition, record.key, record.value)
                    read += len(records)
                for tp in list(behind):
                    if await consumer.position(tp) >= end[tp]:
                        behind.discard(tp)
        finally:
            await consumer.stop()
        log.info("%s: %d changelog records read for partitions %s (%d rows)", self.name, read, wanted, len(self._rows))
        return read


def following(stores: list[ChangelogStore], bootstrap: str, *, security: KafkaSecurity = PLAINTEXT) -> Assigned:
    """A stage's ``on_assigned`` that keeps ``stores`` to the partitions it holds: the rows of partitions it
    lost are dropped, those of partitions it gained read from their changelogs."""
    owned: set[int] = set()

    async def assigned(partitions: set[int]) -> None:
        nonlocal owned
        lost, gained = owned - partitions, partitions - owned
        for store in stores:
            store.drop(lost)
            await store.recover(bootstrap, gained, security=security)
        owned = set(partitions)

    return assigned
