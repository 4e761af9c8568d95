"""Durable before acknowledged: no AA unless Kafka confirmed the write."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import signal
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import DefaultPartitioner

from carehub.broker import EmbeddedBroker
from carehub.connectors.mllp import MLLPClient, ack_code
from carehub.core.errors import MessageTooLargeError, StorageUnavailableError
from carehub.core.records import InboundMessage
from carehub.hub import Hub
from carehub.kafka import KafkaPublisher, ensure_topics
from tests.adapters.mllp_testkit import MLLPClient as TestClient
from tests.adapters.mllp_testkit import frame
from tests.conftest import FEED
from tests.integration.conftest import hub_settings

pytestmark = pytest.mark.integration


async def _read_inbound(bootstrap: str, topic: str, expected: int) -> list[tuple[bytes, InboundMessage]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    found: list[tuple[bytes, InboundMessage]] = []
    try:
        while len(found) < expected:
            batch = await consumer.getmany(timeout_ms=5000)
            if not batch:
                break
            for records in batch.values():
                found.extend((r.key, InboundMessage.from_json(r.value)) for r in records)
    finally:
        await consumer.stop()
    return found


async def test_aa_means_the_raw_bytes_and_receipt_are_on_the_inbound_topic(broker: str, config_dir: Path) -> None:
    hub = Hub(hub_settings(config_dir, broker), roles=("ingest",))
    await hub.start()
    payload = (FEED / "05-a01-admit-okafor.hl7").read_bytes()
    client = MLLPClient("127.0.0.1", hub.mllp_port)
    try:
        assert ack_code(await client.send(payload)) == "AA"
    finally:
        await client.close()
        await hub.stop()
    [(key, stored)] = await _read_inbound(broker, hub.topics.hl7v2_inbound, 1)
    assert key == b"RGH|MRN100871", "keyed by PID-3 authority and identifier, not MSH-10"
    assert stored.raw == payload and base64.b64decode(stored.raw_b64) == payload
    assert (stored.control_id, stored.message_type, stored.trigger_event) == ("RGH0005", "ADT", "A01")
    assert stored.sending_facility == "RGH" and stored.received_at.endswith("Z")


async def _ready(port: int) -> int:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/ready") as response:
        return response.status


async def _eventually_ready(port: int, status: int, timeout_s: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while (found := await _ready(port)) != status:
        assert asyncio.get_running_loop().time() < deadline, f"/ready stayed {found}, wanted {status}"
        await asyncio.sleep(0.2)


async def test_broker_outage_is_visible_answered_promptly_and_survived(
    config_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Broker stopped under a live listener: /ready 503, prompt AR 207; restarted on the same port: AA again."""
    caplog.set_level(logging.INFO)
    own = EmbeddedBroker()
    own.start()
    hub = Hub(hub_settings(config_dir, own.bootstrap, produce_timeout_s=2.0), roles=("ingest",))  # the default
    await hub.start()
    client = MLLPClient("127.0.0.1", hub.mllp_port, timeout_s=30)
    try:
        assert ack_code(await client.send((FEED / "02-a01-admit-rivera.hl7").read_bytes())) == "AA"
        assert await _ready(hub.http_port) == 200
        own.stop()
        loop = asyncio.get_running_loop()
        for name in ("03-a02-transfer-rivera.hl7", "04-a03-discharge-rivera.hl7", "05-a01-admit-okafor.hl7"):
            began = loop.time()
            ack = await client.send((FEED / name).read_bytes())
            took = loop.time() - began
            assert ack_code(ack) == "AR", ack
            assert "\rERR|" in ack.decode() and "|207^" in ack.decode()
            assert took < 5.0, f"negative ACK after {took:.1f} s (produce timeout 2 s)"
        await _eventually_ready(hub.http_port, 503)
        assert "MSA|AR|RGH0003" in (await client.send((FEED / "03-a02-transfer-rivera.hl7").read_bytes())).decode()

        again = EmbeddedBroker(port=own.port)  # same address, empty storage: topics must be provisioned again
        again.start()
        try:
            await _eventually_ready(hub.http_port, 200)
            ack = await client.send((FEED / "03-a02-transfer-rivera.hl7").read_bytes())
            assert ack_code(ack) == "AA", ack
            [(_, stored)] = await _read_inbound(own.bootstrap, hub.topics.hl7v2_inbound, 1)
            assert stored.control_id == "RGH0003", "the AA'd message is on the restarted broker"
        finally:
            await client.close()
            await hub.stop()
            again.stop()
    finally:
        await client.close()
        await hub.stop()
        own.stop()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Kafka broker")]
    assert sum(" lost (" in line for line in lines) == 1, lines
    assert sum(" is back after " in line for line in lines) == 1, lines


async def test_a_record_the_broker_will_not_take_is_refused_without_marking_the_broker_lost(broker: str) -> None:
    topic = f"t{os.getpid()}-size.hl7v2.inbound"
    ensure_topics(broker, [topic], 1)
    publisher = KafkaPublisher(broker, topic, 2.0, max_request_size=65_536)
    await publisher.start()
    try:
        big = InboundMessage(
            InboundMessage.encode_raw(b"x" * 100_000), "utf-8", "", "l", "p", "BIG", "ADT", "A01", "2.5", "", "", "K|1"
        )
        with pytest.raises(MessageTooLargeError):
            await publisher.publish(big)
        assert publisher.health.healthy, "one oversize record is not a broker outage"
        await publisher.publish(replace(big, raw_b64=InboundMessage.encode_raw(b"small"), control_id="SMALL"))
    finally:
        await publisher.stop()


async def test_inbound_records_written_at_once_or_batched_land_once_where_the_producer_would_put_them(
    broker: str,
) -> None:
    """The publisher's direct path: a record alone goes out as its own request at once; records that
    arrive while a request is in flight go out together in the next. Every confirmed record is on the
    topic once, in the partition murmur2 of its key picks (what the stages reading the topic are
    co-partitioned by), and a record the direct path cannot take goes through the producer's."""
    topic = f"t{os.getpid()}-direct.hl7v2.inbound"
    ensure_topics(broker, [topic], 4)
    publisher = KafkaPublisher(broker, topic, 10.0)
    await publisher.start()

    def record(n: int) -> InboundMessage:
        raw = InboundMessage.encode_raw(f"MSH|^~\\&|A|B|||||ADT^A01|C{n}|P|2.5\r".encode())
        return InboundMessage(raw, "utf-8", "", "l", "p", f"C{n}", "ADT", "A01", "2.5", "A", "B", f"RGH|MRN{n % 13}")

    try:
        for n in range(30):  # one at a time, as a stop-and-wait sender on one connection
            await publisher.publish(record(n))
        assert publisher.writes["direct"] >= 25, publisher.writes
        assert publisher.direct.requests == publisher.direct.records, "one at a time: a request each"
        before, requests = dict(publisher.writes), publisher.direct.requests
        await asyncio.gather(*(publisher.publish(record(n)) for n in range(30, 130)))  # many connections at once
        assert publisher.writes["direct"] - before["direct"] == 100, publisher.writes
        assert publisher.direct.requests - requests <= 10, "what arrived meanwhile went out together"
        publisher._producer.client.cluster._partitions.pop(topic)  # metadata not known (yet): the producer's path
        await publisher.publish(record(130))
        assert publisher.writes["producer"] == before["producer"] + 1, publisher.writes
        await publisher.publish(record(131))  # the producer refreshed the metadata: direct again
        assert publisher.writes["direct"] == before["direct"] + 101, publisher.writes
    finally:
        await publisher.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=broker, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    where: dict[str, list[tuple[int, bytes]]] = {}
    try:
        while sum(len(v) for v in where.values()) < 132:
            batch = await consumer.getmany(timeout_ms=5000)
            if not batch:
                break
            for records in batch.values():
                for r in records:
                    assert r.key is not None and r.value is not None
                    where.setdefault(InboundMessage.from_json(r.value).control_id, []).append((r.partition, r.key))
    finally:
        await consumer.stop()
    assert sorted(where) == sorted(f"C{n}" for n in range(132)), "every confirmed record, none twice"
    for control_id, [(partition, key)] in where.items():
        assert partition == DefaultPartitioner()(key, [0, 1, 2, 3], [0, 1, 2, 3]), (control_id, partition)


async def test_records_waiting_for_a_direct_request_go_out_in_requests_within_the_record_limit(broker: str) -> None:
    """What waited goes out together, but never more than kafka.max_record_bytes in one request (what a broker
    with that message.max.bytes takes): 40 records of ~4 KB under a 20,000-byte limit take 9 requests or more."""
    topic = f"t{os.getpid()}-limit.hl7v2.inbound"
    ensure_topics(broker, [topic], 1)
    publisher = KafkaPublisher(broker, topic, 10.0, max_request_size=20_000)
    await publisher.start()

    def record(n: int) -> InboundMessage:
        raw = InboundMessage.encode_raw(f"MSH|^~\\&|A|B|||||ADT^A01|L{n}|P|2.5\r".encode() + b"x" * 3000)
        return InboundMessage(raw, "utf-8", "", "l", "p", f"L{n}", "ADT", "A01", "2.5", "A", "B", "RGH|MRN1")

    try:
        await publisher.publish(record(0))  # metadata and connection in place
        size = len(record(1).to_json()) + len(b"RGH|MRN1") + 512
        requests, direct = publisher.direct.requests, publisher.writes["direct"]
        await asyncio.gather(*(publisher.publish(record(n)) for n in range(1, 41)))
        assert publisher.writes["direct"] - direct == 40, publisher.writes
        assert publisher.direct.requests - requests >= -(-40 * size // 20_000), publisher.direct.requests - requests
    finally:
        await publisher.stop()
    stored = await _read_inbound(broker, topic, 41)
    assert sorted(m.control_id for _, m in stored) == sorted(f"L{n}" for n in range(41)), "each once"


async def test_records_in_flight_and_waiting_when_the_broker_hangs_are_all_answered_and_writes_resume() -> None:
    """The direct path with a request in flight and records waiting for it when the broker stops answering
    (SIGSTOP: the socket stays open): each caller gets stored or StorageUnavailable (AR 207) within about one
    produce timeout, none waits a second one or forever; on a broker back at the same address, bursts are
    written directly again (no leader's lane left taken); when that one is killed under a burst, every
    write is answered again."""
    own = EmbeddedBroker()
    own.start()
    assert own.pid is not None
    topic = f"t{os.getpid()}-hangs.hl7v2.inbound"
    ensure_topics(own.bootstrap, [topic], 4)
    publisher = KafkaPublisher(own.bootstrap, topic, 2.0)
    await publisher.start()

    def record(n: int) -> InboundMessage:
        raw = InboundMessage.encode_raw(f"MSH|^~\\&|A|B|||||ADT^A01|D{n}|P|2.5\r".encode() + b"x" * 4000)
        return InboundMessage(raw, "utf-8", "", "l", "p", f"D{n}", "ADT", "A01", "2.5", "A", "B", f"RGH|MRN{n % 7}")

    async def outcome(n: int) -> str:
        try:
            await publisher.publish(record(n))
        except StorageUnavailableError:
            return "AR 207"
        return "stored"

    again: EmbeddedBroker | None = None
    try:
        await asyncio.gather(*(publisher.publish(record(n)) for n in range(20)))
        os.kill(own.pid, signal.SIGSTOP)
        while Path(f"/proc/{own.pid}/stat").read_text().split(") ", 1)[1][0] != "T":  # stopped, not just signalled
            await asyncio.sleep(0.01)
        began = asyncio.get_running_loop().time()
        burst = [asyncio.ensure_future(outcome(n)) for n in range(20, 220)]  # one request out, the rest waiting
        done, pending = await asyncio.wait(burst, timeout=15)
        took = asyncio.get_running_loop().time() - began
        assert not pending, f"{len(pending)} writes never answered"
        assert {t.result() for t in done} == {"AR 207"}, "a hung broker stores nothing"
        assert took < 3.5, f"the last answer after {took:.1f} s: waiting records waited a second timeout (2 s)"
        os.kill(own.pid, signal.SIGKILL)
        own.stop()
        again = EmbeddedBroker(port=own.port)
        again.start()
        ensure_topics(again.bootstrap, [topic], 4)
        await _healthy(publisher)
        for _ in range(50):  # until the producer's metadata has the topic again
            try:
                await publisher.publish(record(999))
                break
            except StorageUnavailableError:
                await asyncio.sleep(0.2)
        before = publisher.writes["direct"]
        await asyncio.gather(*(publisher.publish(record(n)) for n in range(300, 340)))
        assert publisher.writes["direct"] - before == 40, publisher.writes
        assert again.pid is not None
        os.kill(again.pid, signal.SIGKILL)  # gone, its sockets closed: the requests fail at once
        burst = [asyncio.ensure_future(outcome(n)) for n in range(400, 600)]
        done, pending = await asyncio.wait(burst, timeout=15)
        assert not pending, f"{len(pending)} writes never answered after the broker was killed"
    finally:
        await publisher.stop()
        own.stop()
        if again is not None:
            again.stop()


async def _healthy(publisher: KafkaPublisher, timeout_s: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not publisher.health.healthy:
        assert asyncio.get_running_loop().time() < deadline, "the publisher never saw the broker back"
        await asyncio.sleep(0.2)


async def test_enhanced_mode_sends_the_application_ack_msh16_asks_for_after_the_commit_ack(
    broker: str, config_dir: Path
) -> None:
    """A real ingest hub: CA once durable, then AA for a message the hub can process, AE for one it cannot
    (a BAR^P01 the listener is configured to take, which the hub's mappings do not turn into a CareEvent)."""
    s = hub_settings(config_dir, broker)
    mllp = replace(s.mllp, ack_mode="enhanced", accept_message_types=("ADT", "BAR"))
    hub = Hub(replace(s, mllp=mllp), roles=("ingest",))
    await hub.start()
    try:
        good = (FEED / "02-a01-admit-rivera.hl7").read_bytes().replace(b"|||AL|NE|", b"|||AL|AL|", 1)
        assert b"|||AL|AL|" in good
        billing = good.replace(b"ADT^A01^ADT_A01", b"BAR^P01^BAR_P01", 1).replace(b"EVN|A01|", b"EVN|P01|", 1)
        billing = billing.replace(b"RGH0002", b"RGH9002")
        client = await TestClient.connect(hub.mllp_port)
        await client.write(frame(good) + frame(billing))
        answers = [await client.read_ack(timeout=30) for _ in range(4)]
        await client.close()
    finally:
        await hub.stop()
    assert [(a.code, a.acked_id) for a in answers] == [
        ("CA", "RGH0002"), ("AA", "RGH0002"), ("CA", "RGH9002"), ("AE", "RGH9002"),
    ]  # fmt: skip
    assert "not an ADT message" in "|".join(answers[3].segments["ERR"]), "the application ACK says why"
