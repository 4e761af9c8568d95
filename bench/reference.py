"""The naive ingest reference (performance.md §12), measured in the same run.

MLLP in, raw bytes produced to Kafka with acks=all (aiokafka send_and_wait,
linger 0), then a fixed AA: nothing else. carehub's ingest does more
(receipt metadata, patient key, validated ACKs); the aim is to stay within
10% of this.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer

ACK = b"\x0bMSH|^~\\&|REF|REF|||20260101||ACK|1|P|2.5.1\rMSA|AA|1\r\x1c\r"


class ReferenceServer:
    def __init__(self, bootstrap: str, topic: str) -> None:
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
        self._topic = topic
        self._server: asyncio.base_events.Server | None = None
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                block = await reader.readuntil(b"\x1c\r")
                await self._producer.send_and_wait(self._topic, block[1:-2])
                writer.write(ACK)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def start(self) -> None:
        await self._producer.start()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._producer.stop()
