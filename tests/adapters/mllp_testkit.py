"""Test helpers for the MLLP adapter: real publishers for our seam, a raw client, messages.

The publishers are real implementations of ``adapters.mllp.inbound.Publisher``
(our own seam, the far side of the adapter), not mocks of a protocol we speak.
The client reads ACKs with ``StreamReader.readuntil`` so it shares no code
with the decoder under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from carehub.core.errors import StorageUnavailableError
from carehub.core.records import InboundMessage

SB, EB, CR = b"\x0b", b"\x1c", b"\r"

SHARED = Path(os.environ.get("CAREHUB_SHARED", Path(__file__).resolve().parents[2] / ".." / "shared"))
HL7_CORPUS = SHARED / "corpus" / "hl7v2"


class ListPublisher:
    """Keeps every published message in order, like a one-partition topic."""

    def __init__(self) -> None:
        self.messages: list[InboundMessage] = []

    async def publish(self, message: InboundMessage) -> None:
        self.messages.append(message)

    def control_ids(self) -> list[str]:
        return [m.control_id for m in self.messages]


class UnavailablePublisher:
    """A broker that never confirms: every publish raises StorageUnavailableError."""

    def __init__(self) -> None:
        self.attempts = 0

    async def publish(self, message: InboundMessage) -> None:
        self.attempts += 1
        raise StorageUnavailableError("broker did not confirm the write")


class GatedPublisher(ListPublisher):
    """Holds every publish until ``gate`` is set: shows when the ACK may leave."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def publish(self, message: InboundMessage) -> None:
        self.entered.set()
        await self.gate.wait()
        await super().publish(message)


class SlowPublisher:
    """Never finishes within any reasonable deadline."""

    async def publish(self, message: InboundMessage) -> None:
        await asyncio.sleep(3600)


class ExplodingPublisher:
    """Raises an unexpected error whose text quotes the message (must not be logged)."""

    async def publish(self, message: InboundMessage) -> None:
        raise RuntimeError(f"cannot store {message.text()}")


def adt(
    control_id: str = "MSG0001",
    *,
    version: str = "2.5",
    message_type: str = "ADT^A01^ADT_A01",
    processing_id: str = "P",
    pid: str | None = "PID|1||12345^^^HOSP^MR||DOE^JANE||19800101|F",
    charset: str = "",
    sending_facility: str = "SFAC",
) -> str:
    """A small fictional ADT message (CR separated, trailing CR)."""
    msh = (
        f"MSH|^~\\&|SAPP|{sending_facility}|RAPP|RFAC|20240102030405||{message_type}|{control_id}|"
        f"{processing_id}|{version}|||AL|NE||{charset}"
    )
    segments = [msh.rstrip("|"), "EVN|A01|20240102030405"]
    if pid is not None:
        segments.append(pid)
    segments.append("PV1|1|I|WARD^101^1")
    return "\r".join(segments) + "\r"


def frame(payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return SB + data + EB + CR


@dataclass
class Ack:
    """An ACK split naively (CR, then the field separator): independent of our tokenizer."""

    raw: bytes
    segments: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: bytes, encoding: str = "utf-8") -> Ack:
        text = raw.decode(encoding)
        sep = text[3]
        segments = {line[:3]: line.split(sep) for line in text.split("\r") if line}
        if "MSH" in segments:
            segments["MSH"].insert(1, sep)  # so MSH-n is index n
        return cls(raw, segments)

    @property
    def code(self) -> str:
        return self.segments["MSA"][1]

    @property
    def acked_id(self) -> str:
        return self.segments["MSA"][2]

    def field(self, segment: str, n: int) -> str:
        fields = self.segments[segment]
        return fields[n] if n < len(fields) else ""


class MLLPClient:
    """A plain asyncio MLLP client over a real socket (optionally TLS)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, ssl_context: ssl.SSLContext | None = None) -> MLLPClient:
        server_hostname = "localhost" if ssl_context is not None else None
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ssl_context, server_hostname=server_hostname
        )
        return cls(reader, writer)

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_ack(self, timeout: float = 5.0, encoding: str = "utf-8") -> Ack:
        block = await asyncio.wait_for(self.reader.readuntil(EB + CR), timeout)
        assert block.startswith(SB), block[:20]
        return Ack.parse(block[1:-2], encoding)

    async def exchange(self, payload: bytes | str, encoding: str = "utf-8") -> Ack:
        """Send one message and wait for its ACK (stop-and-wait, as most senders do)."""
        await self.write(frame(payload))
        return await self.read_ack(encoding=encoding)

    async def read_to_eof(self, timeout: float = 5.0) -> bytes:
        return await asyncio.wait_for(self.reader.read(), timeout)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self.writer.wait_closed()
