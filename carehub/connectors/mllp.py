"""An asyncio MLLP client: one connection, stop-and-wait, optional TLS.

Used to forward HL7v2 to MLLP destinations (``MLLPDestination``: waits for
the ACK; AA ok, AE or timeout retry, AR permanent; optional TLS), and by the
demo and the benchmarks to play feeds into a listener.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
from collections.abc import Callable, Mapping
from urllib.parse import urlparse

from carehub.adapters.hl7.tokenizer import Message, parse_message
from carehub.adapters.mllp.framing import MLLPDecoder, RejectedFrame
from carehub.adapters.mllp.framing import encode_frame as frame
from carehub.core.errors import DeliveryError, UnreadableMessageError
from carehub.core.records import Delivery

__all__ = ["MLLPClient", "MLLPDestination", "ack_code", "frame", "parse_endpoint"]

#: An ACK larger than this is not an ACK.
MAX_ACK_BYTES = 1_048_576


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
        # The listener's own decoder: the same tolerance (a lone end byte, junk between blocks).
        self._decoder = MLLPDecoder(MAX_ACK_BYTES)
        self._blocks: collections.deque[bytes] = collections.deque()

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
            return await asyncio.wait_for(self._next_block(self._reader), self.timeout_s)
        except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
            await self.close()
            raise DeliveryError(
                f"no ACK from MLLP {self.host}:{self.port}: {type(exc).__name__}", permanent=False
            ) from exc

    async def _next_block(self, reader: asyncio.StreamReader) -> bytes:
        while not self._blocks:
            data = await reader.read(65536)
            if not data:
                raise asyncio.IncompleteReadError(b"", None)
            for item in self._decoder.feed(data):
                if isinstance(item, RejectedFrame):
                    raise asyncio.IncompleteReadError(b"", MAX_ACK_BYTES)  # an oversize block is no ACK
                self._blocks.append(item)
        return self._blocks.popleft()

    async def close(self) -> None:
        self._decoder.finish()
        self._blocks.clear()
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def _parsed(payload: bytes) -> Message | None:
    """A payload tokenized as the listener does (delimiters from MSH-2, latin-1 keeps each byte); None if unreadable."""
    try:
        return parse_message(payload.decode("latin-1"))
    except UnreadableMessageError:
        return None


def _msa(ack: bytes, n: int) -> str:
    message = _parsed(ack)
    msa = message.segment("MSA") if message is not None else None
    return msa.raw(n) if msa is not None else ""


def ack_code(ack: bytes) -> str:
    """MSA-1 of an ACK payload ("" when there is no MSA segment)."""
    return _msa(ack, 1)


def parse_endpoint(endpoint: str) -> tuple[str, int, bool]:
    """``mllp://host:port`` -> (host, port, tls=False); ``mllps://`` -> TLS."""
    parsed = urlparse(endpoint)
    if parsed.scheme not in ("mllp", "mllps") or not parsed.hostname or not parsed.port:
        raise DeliveryError(f"not an MLLP endpoint (mllp://host:port): {parsed.scheme}://…", permanent=True)
    return parsed.hostname, parsed.port, parsed.scheme == "mllps"


def control_id(message: bytes) -> bytes:
    """MSH-10 of a message (b"" when it cannot be read)."""
    parsed = _parsed(message)
    return parsed.msh.raw(10).encode("latin-1") if parsed is not None else b""


def judge_ack(ack: bytes, sent_control_id: bytes) -> DeliveryError | None:
    """None for AA/CA; AE/CE (and an unreadable or mismatched ACK) retry; AR/CR are permanent."""
    code = ack_code(ack)
    if code in ("AA", "CA"):
        acked = _msa_control_id(ack)
        if sent_control_id and acked and acked != sent_control_id:
            return DeliveryError("MLLP ACK names another message (MSA-2)", permanent=False)
        return None
    if code in ("AR", "CR"):
        return DeliveryError(f"MLLP recipient rejected the message ({code})", permanent=True)
    if code in ("AE", "CE"):
        return DeliveryError(f"MLLP recipient answered {code}", permanent=False)
    return DeliveryError("MLLP answer has no readable MSA", permanent=False)


def _msa_control_id(ack: bytes) -> bytes:
    return _msa(ack, 2).encode("latin-1")


class MLLPDestination:
    """Forward HL7v2 (payload ``{"hl7": text}``) to ``mllp://`` / ``mllps://`` endpoints.

    One connection per endpoint, stop-and-wait (the next message goes only
    after the ACK), reopened after any error. Each send waits for the ACK
    within the timeout.
    """

    def __init__(self, timeout_s: float, options_for: Callable[[str], Mapping[str, str]] | None = None) -> None:
        self.timeout_s = timeout_s
        self._options_for = options_for or (lambda _: {})
        self._clients: dict[str, MLLPClient] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def _client(self, delivery: Delivery) -> MLLPClient:
        client = self._clients.get(delivery.endpoint)
        if client is None:
            host, port, tls = parse_endpoint(delivery.endpoint)
            context = None
            if tls:
                context = ssl.create_default_context(cafile=self._options_for(delivery.recipient_id).get("tls_ca"))
            client = self._clients[delivery.endpoint] = MLLPClient(
                host, port, timeout_s=self.timeout_s, ssl_context=context
            )
        return client

    async def send(self, delivery: Delivery) -> int:
        text = delivery.payload.get("hl7")
        if not isinstance(text, str) or not text.startswith("MSH"):
            raise DeliveryError("forward payload holds no HL7v2 message", permanent=True)
        message = text.replace("\r\n", "\r").replace("\n", "\r").encode("utf-8")
        lock = self._locks.setdefault(delivery.endpoint, asyncio.Lock())
        async with lock:
            client = self._client(delivery)
            ack = await client.send(message)
        error = judge_ack(ack, control_id(message))
        if error is not None:
            raise error
        return 200

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
