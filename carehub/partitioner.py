"""The partition of a keyed record: Kafka's default (murmur2 of the key, as the Java client), each key's hash kept.

aiokafka's ``DefaultPartitioner`` hashes the key in pure Python on every send (~3 us for a patient key);
a stream worker sends a dozen records per message under the same patient key (deliveries, AuditEvents,
outcomes, the changelogs), so the hash of a recent key is looked up instead. Same partitions as the
default, so every producer of a topic still agrees with every other client on where a key lives.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from aiokafka.partitioner import murmur2

#: Keys whose hash is kept; when full, the memo starts again.
LIMIT = 65_536


class KeyPartitioner:
    """``partitioner(key, all_partitions, available)`` for ``AIOKafkaProducer(partitioner=...)``."""

    def __init__(self, limit: int = LIMIT) -> None:
        self._limit = limit
        self._hashes: dict[bytes, int] = {}

    def __call__(self, key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]) -> int:
        if key is None:
            return random.choice(available or all_partitions)
        found = self._hashes.get(key)
        if found is None:
            if len(self._hashes) >= self._limit:
                self._hashes.clear()
            found = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[found % len(all_partitions)]
