"""The MLLP client (forwarder, demo, bench) reads ACKs with the listener's own decoder.

A peer that ends its ACK with a lone 0x1C, or sends junk before the start
block, is understood at once instead of timing out (the client used to wait
for 0x1C 0x0D); the carehub listener accepts the same from senders.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from carehub.adapters.mllp.framing import MLLPDecoder
from carehub.connectors.mllp import MLLPClient, ack_code

ACK = b"MSH|^~\\&|R|RF|S|SF|20240101||ACK^A01^ACK|A1|P|2.5\rMSA|AA|C1\r"


class OddPeer:
    """An MLLP receiver that frames its answers the way some real systems do."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.port = 0
        self._server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = MLLPDecoder(1 << 20)
        while data := await reader.read(65536):
            for _ in decoder.feed(data):
                writer.write(self.answer)
                await writer.drain()
        writer.close()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()


@pytest.fixture
async def peer(request: pytest.FixtureRequest) -> AsyncIterator[OddPeer]:
    running = OddPeer(request.param)
    await running.start()
    yield running
    await running.stop()


@pytest.mark.parametrize(
    "peer",
    [b"\x0b" + ACK + b"\x1c", b"\r\n\x0b" + ACK + b"\x1c\r", b"\x0b" + ACK + b"\x1c\r"],
    ids=["lone-end-byte", "junk-before-start", "standard"],
    indirect=True,
)
async def test_ack_is_read_however_the_peer_frames_it(peer: OddPeer) -> None:
    client = MLLPClient("127.0.0.1", peer.port, timeout_s=2.0)
    try:
        for _ in range(3):  # one connection, stop-and-wait
            ack = await client.send(b"MSH|^~\\&|S|SF|R|RF|20240101||ADT^A01|C1|P|2.5\r")
            assert ack == ACK and ack_code(ack) == "AA"
    finally:
        await client.close()
