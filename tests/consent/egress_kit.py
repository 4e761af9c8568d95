"""The far side of every egress, speaking the real protocols, and a scanner for what reached it.

* ``HttpSink``: one aiohttp server standing in for every webhook and FHIR REST recipient
  (``/r/<recipient>/...``); records each body as received and answers the status set per recipient.
* ``MllpSink``: an MLLP listener recording each framed message and answering AA.
* ``external_topics``: every topic of a hub's prefix that is not one of its internal topics,
  read from offset 0 with a plain Kafka consumer (what an outsider granted a topic would see).
* ``MARKERS``: what reveals SUD treatment or a Part 2 program in bytes on the wire.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

from aiohttp import web
from aiokafka import AIOKafkaConsumer, TopicPartition  # type: ignore[import-untyped]

from carehub.connectors.mllp import frame
from carehub.core.topics import Topics
from carehub.ops_http import HTTPServer

#: Codes, text, program identity and labels that reveal SUD treatment (F17 tobacco is not SUD under Part 2).
MARKERS = re.compile(
    rb"F1[0-689]\.\d|T40\.[0-9]|5602001|(?i:opioid)|(?i:detox)|(?i:withdrawal)|(?i:methadone)|(?i:addiction)"
    rb"|4W-SUD|42CFRPart2|RRC-20931|Recovery Center|\bSUD\b"
)


def markers(body: bytes) -> list[str]:
    return sorted({m.decode(errors="replace") for m in MARKERS.findall(body)})


@dataclass
class Received:
    recipient: str
    path: str
    body: bytes


@dataclass
class HttpSink:
    received: list[Received] = field(default_factory=list)
    status: dict[str, int] = field(default_factory=dict)
    server: HTTPServer | None = None

    def url(self, recipient: str, tail: str = "fhir") -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}/r/{recipient}/{tail}"

    async def handle(self, request: web.Request) -> web.Response:
        recipient = request.match_info["recipient"]
        self.received.append(Received(recipient, request.path, await request.read()))
        code = self.status.get(recipient, 200)
        return web.json_response({"resourceType": "OperationOutcome", "issue": []}, status=code)

    def bodies(self, recipient: str | None = None) -> list[bytes]:
        return [r.body for r in self.received if recipient is None or r.recipient == recipient]

    async def start(self) -> None:
        self.server = HTTPServer([web.post("/r/{recipient}/{tail:.*}", self.handle)], "127.0.0.1", 0)
        await self.server.start()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()


@dataclass
class MllpSink:
    received: list[bytes] = field(default_factory=list)
    server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"mllp://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                block = await reader.readuntil(b"\x1c\r")
                message = block[1:-2]
                self.received.append(message)
                control = message.split(b"\r", 1)[0].split(b"|")[9] if message.count(b"|") > 9 else b"X"
                ack = b"MSH|^~\\&|EHR|PARTNER|CAREHUB|CAREHUB|20261108||ACK|A1|P|2.5.1\rMSA|AA|" + control
                writer.write(frame(ack))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


async def external_topics(bootstrap: str, topics: Topics) -> dict[str, list[bytes]]:
    """Every topic under the hub's prefix that is not internal, with every record value from offset 0."""
    internal = set(topics.all())
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        names = sorted(t for t in await consumer.topics() if t.startswith(topics.prefix) and t not in internal)
        found: dict[str, list[bytes]] = {name: [] for name in names}
        assigned = [TopicPartition(t, p) for t in names for p in sorted(consumer.partitions_for_topic(t) or ())]
        if not assigned:
            return found
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        end = await consumer.end_offsets(assigned)
        while [tp for tp, offset in end.items() if await consumer.position(tp) < offset]:
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                found[tp.topic] += [r.value for r in records]
        return found
    finally:
        await consumer.stop()
