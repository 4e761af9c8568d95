"""The partition of a keyed record: Kafka's default (murmur2 of the key, as the Java client), each key's hash kept.

aiokafka's ``DefaultPartitioner`` hashes the key a byte at a time in Python on every send;
a stream worker sends a dozen records per message under the same patient key (deliveries, AuditEvents,
outcomes, the changelogs), so the hash of a recent key is looked up instead. Same partitions as the
default, so every producer of a topic still agrees with every other client on where a key lives.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Sequence

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (``Utils.murmur2``, what aiokafka's default partitioner hashes keys with),
    a word at a time: aiokafka's byte-at-a-time version costs ~15 us for a 40-byte patient key.
    The same value for every input (tests/core/test_kafka_wire.py)."""
    length = len(data)
    h = 0x9747B28C ^ length
    words = length >> 2
    for k in struct.unpack_from(f"<{words}I", data) if words else ():
        k = (k * _M) & _MASK
        k ^= k >> 24
        h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    tail = length & 3
    if tail:
        end = length & ~3
        if tail == 3:
            h ^= data[end + 2] << 16
        if tail >= 2:
            h ^= data[end + 1] << 8
        h = ((h ^ data[end]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


def partition_for(key: bytes, partitions: list[int]) -> int:
    """The partition aiokafka's default partitioner picks for a key (``partitions`` as it lists them)."""
    return partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]


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
