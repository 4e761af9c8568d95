"""The packed ProduceRequest and its response decoding are aiokafka's, byte for byte, for every version they cover."""

from __future__ import annotations

import random
from io import BytesIO

import pytest
from aiokafka.partitioner import DefaultPartitioner, murmur2
from aiokafka.protocol.produce import ProduceRequest

from carehub.kafka_wire import PACKED, ProduceRecords
from carehub.partitioner import murmur2 as packed_murmur2
from carehub.partitioner import partition_for

VERSIONS = sorted(cls.API_VERSION for cls in PACKED)
TOPICS = [
    ("t1.hl7v2.inbound", [(3, b"\x00" * 61 + b"records"), (0, b""), (1, None)]),
    ("t\u00e9.other", [(7, bytes(range(256)) * 9)]),
]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("transactional_id", [None, "", "tx-\u00e9"])
def test_the_request_and_its_header_are_aiokafkas_bytes(version: int, transactional_id: str | None) -> None:
    ours = ProduceRecords(transactional_id, -1, 2000, TOPICS).prepare({0: (0, version)})
    theirs = ProduceRequest(transactional_id, -1, 2000, TOPICS).prepare({0: (0, version)})
    assert type(ours) is PACKED[type(theirs)] and ours.API_VERSION == theirs.API_VERSION == version
    assert ours.encode() == theirs.encode()
    header = ours.build_request_header(correlation_id=2**31 - 1, client_id="aiokafka-producer-7")
    assert header.encode() == theirs.build_request_header(2**31 - 1, "aiokafka-producer-7").encode()


@pytest.mark.parametrize("version", VERSIONS)
def test_the_response_decodes_as_aiokafka_decodes_it(version: int) -> None:
    ours = ProduceRecords(None, -1, 2000, TOPICS).prepare({0: (0, version)})
    theirs = ProduceRequest(None, -1, 2000, TOPICS).prepare({0: (0, version)})
    extra = (2**40,) if version >= 5 else ()
    topics = [
        ("t1.hl7v2.inbound", [(3, 0, 12345, -1, *extra), (0, 10, -1, 1_700_000_000_000, *extra)]),
        ("t\u00e9.other", [(7, 6, 2**62, -1, *extra)]),
        ("empty", []),
    ]
    encoded = theirs.RESPONSE_TYPE(topics=topics, throttle_time_ms=17).encode()
    mine, reference = ours.RESPONSE_TYPE.decode(BytesIO(encoded)), theirs.RESPONSE_TYPE.decode(BytesIO(encoded))
    assert mine.API_VERSION == reference.API_VERSION == version
    assert [(t, [tuple(p) for p in ps]) for t, ps in mine.topics] == [
        (t, [tuple(p) for p in ps]) for t, ps in reference.topics
    ]
    assert mine.throttle_time_ms == reference.throttle_time_ms == 17
    frame = b"\x7f\xff\xff\xfe" + encoded
    assert ours.parse_response_header(BytesIO(frame)).correlation_id == 2**31 - 2
    assert theirs.parse_response_header(BytesIO(frame)).correlation_id == 2**31 - 2


def test_versions_outside_the_packed_ones_keep_aiokafkas_encoding() -> None:
    ours = ProduceRecords(None, -1, 2000, TOPICS).prepare({0: (0, 2)})
    theirs = ProduceRequest(None, -1, 2000, TOPICS).prepare({0: (0, 2)})
    assert type(ours) is type(theirs) and ours.encode() == theirs.encode()
    assert VERSIONS == [3, 4, 5, 6, 7], "what the deployment's brokers negotiate (Tansu: v7) is covered"


def test_murmur2_and_the_partition_are_the_producers() -> None:
    draw = random.Random(13)
    keys = [b"", b"a", b"ab", b"abc", b"RGH|MRN100871", "RGH^2.16.840.1.113883.3.1^ISO|MRNé".encode()]
    keys += [bytes(draw.randrange(256) for _ in range(draw.randrange(90))) for _ in range(3000)]
    for key in keys:
        assert packed_murmur2(key) == murmur2(key), key
        for count in (1, 4, 12, 31):
            partitions = list(set(range(count)))
            assert partition_for(key, partitions) == DefaultPartitioner()(key, partitions, partitions), key
