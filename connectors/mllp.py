"""An asyncio MLLP client: one connection, stop-and-wait, optional TLS.

Used to forward HL7v2 to MLLP destinations, and by the demo and the
benchmarks to play feeds into a listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

from core.errors import DeliveryError

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"


def frame(payload: bytes) -> bytes:
    return START_BLOCK + payload + END_BLOCK


class MLLPClient:
    def __init__(
        self, host: str, port: int, *, timeout_s: float = 30.0, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self._ssl = ssl_context
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, ssl=self._ssl), self.timeout_s
            )
        except (TimeoutError, OSError) as exc:
            raise DeliveryError(f"cannot connect to MLLP {self.host}:{self.port}", permanent=False) from exc

    async def send(self, payload: bytes) -> bytes:
        """Send one message; return the ACK payload (without framing)."""
        if self._writer is None or self._reader is None:
            await self.connect()
        assert self._writer is not None and self._reader is not None
        try:
            self._writer.write(frame(payload))
            await self._writer.drain()
            block = await asyncio.wait_for(self._reader.readuntil(END_BLOCK), self.timeout_s)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            await self.close()
            raise DeliveryError(
                f"no ACK from MLLP {self.host}:{self.port}: {type(exc).__name__}", permanent=False
            ) from exc
        start = block.find(START_BLOCK)
        return block[start + 1 : -len(END_BLOCK)] if start != -1 else block[: -len(END_BLOCK)]

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def ack_code(ack: bytes) -> str:
    """MSA-1 of an ACK payload ("" when there is no MSA segment)."""
    for segment in ack.replace(b"\n", b"\r").split(b"\r"):
        if segment.startswith(b"MSA"):
            parts = segment.split(segment[3:4] or b"|")
            return parts[1].decode("ascii", "replace") if len(parts) > 1 else ""
    return ""
