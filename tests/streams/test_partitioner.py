"""carehub.partitioner: the same partition as aiokafka's default for every key, each key hashed once."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner

from carehub.partitioner import KeyPartitioner


def test_every_key_lands_where_the_default_partitioner_puts_it() -> None:
    ours, theirs = KeyPartitioner(limit=100), DefaultPartitioner()
    keys = [f"RGH|MRN{n:08d}".encode() for n in range(500)] + [b"", b"a", b"ab", b"abc", "Zoë|é".encode()]
    for count in (1, 3, 6, 12):
        partitions = list(range(count))
        for key in keys * 2:  # the second time from the memo (cleared on the way: the limit is 100)
            assert ours(key, partitions, partitions) == theirs(key, partitions, partitions)


def test_the_memo_holds_at_most_its_limit() -> None:
    ours = KeyPartitioner(limit=10)
    for n in range(25):
        ours(str(n).encode(), [0, 1, 2], [0, 1, 2])
    assert len(ours._hashes) <= 10


def test_a_record_without_a_key_goes_to_an_available_partition() -> None:
    ours = KeyPartitioner()
    assert {ours(None, [0, 1, 2], [2]) for _ in range(20)} == {2}
    assert {ours(None, [0, 1, 2], []) for _ in range(50)} <= {0, 1, 2}
