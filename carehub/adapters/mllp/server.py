"""The asyncio MLLP receiver: sockets in, blocks to a handler, ACKs back in order.

One :class:`asyncio.Protocol` per connection feeds an :class:`MLLPDecoder`
and queues what it yields; one worker task per connection hands the queue to
the handler strictly in order, so a pipelining sender gets its ACKs in the
order it sent and one connection's messages reach the broker in order.
Reading pauses while a connection has many blocks queued, so a fast sender
cannot grow memory without bound.

The receiver knows nothing of HL7 or Kafka: it speaks to a
:class:`FrameHandler`. It logs connection events and, at DEBUG only, one line
per ACK with control id, type, peer, sizes and code, never content.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, cast

from carehub.adapters.mllp.framing import Decoded, MLLPDecoder, RejectedFrame, encode_frame
from carehub.adapters.mllp.inbound import Receipt, Reply
from carehub.core.lograte import LogThrottle
from carehub.core.settings import MLLPSettings

log = logging.getLogger(__name__)

#: Pause reading when this many blocks wait for the handler; resume at the low mark.
QUEUE_HIGH = 32
QUEUE_LOW = 8
_rejected_lines = LogThrottle(10.0)
_dropped_lines = LogThrottle(10.0)


class FrameHandler(Protocol):
    """What the receiver needs from the business side (see inbound.InboundHandler).

    ``handle`` and ``reject`` promise not to raise; ``fail`` is the answer
    used if one does anyway, so the frame is still answered in order.
    """

    async def handle(self, payload: bytes, receipt: Receipt) -> Reply: ...

    def reject(self, frame: RejectedFrame, receipt: Receipt) -> Reply: ...

    def fail(self, receipt: Receipt) -> Reply: ...


@dataclass(slots=True)
class ListenerStats:
    """Counters for one listener, cheap enough to bump per message."""

    connections_open: int = 0
    connections_total: int = 0
    idle_closed: int = 0
    bytes_in: int = 0
    frames_too_large: int = 0
    incomplete_frames: int = 0
    junk_bytes: int = 0
    by_ack_code: dict[str, int] = field(default_factory=lambda: {"AA": 0, "AE": 0, "AR": 0})
    #: Replies not sent because MSH-15 asked for none (enhanced mode).
    acks_withheld: int = 0
    #: Application ACKs sent (enhanced mode, MSH-16).
    application_acks: int = 0

    @property
    def accepted(self) -> int:
        return self.by_ack_code.get("AA", 0) + self.by_ack_code.get("CA", 0)

    @property
    def errors(self) -> int:
        return self.by_ack_code.get("AE", 0) + self.by_ack_code.get("CE", 0)

    @property
    def rejected(self) -> int:
        return self.by_ack_code.get("AR", 0) + self.by_ack_code.get("CR", 0)

    def record(self, reply: Reply) -> None:
        self.by_ack_code[reply.code] = self.by_ack_code.get(reply.code, 0) + 1

    def snapshot(self) -> dict[str, int]:
        """Flat copy for printing or serving as metrics."""
        flat = {f"ack_{code}": n for code, n in self.by_ack_code.items()}
        flat.update(
            connections_open=self.connections_open,
            connections_total=self.connections_total,
            idle_closed=self.idle_closed,
            bytes_in=self.bytes_in,
            frames_too_large=self.frames_too_large,
            incomplete_frames=self.incomplete_frames,
            junk_bytes=self.junk_bytes,
            acks_withheld=self.acks_withheld,
        )
        return flat


def make_server_ssl_context(
    cert: str | Path, key: str | Path, client_ca: str | Path | None = None, *, client_cert_optional: bool = False
) -> ssl.SSLContext:
    """TLS 1.2+ server context; with ``client_ca``, clients must present a cert it signed (mTLS).

    ``client_cert_optional`` (the HTTP listener, where a token may stand in for a certificate)
    verifies a certificate when one is presented and lets a client without one connect.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    if client_ca is not None:
        context.verify_mode = ssl.CERT_OPTIONAL if client_cert_optional else ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=str(client_ca))
    return context


def _context_from_settings(settings: MLLPSettings) -> ssl.SSLContext | None:
    if settings.tls_cert and settings.tls_key:
        return make_server_ssl_context(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
    return None


#: Told of each ACK written: (ACK code, seconds from the block's arrival to the write).
AckObserver = Callable[[str, float], None]


class MLLPServer:
    """An MLLP listener. ``start()`` binds (port 0 picks a free port), ``stop()`` drains.

    TLS comes from ``ssl_context`` or, when that is None, from the settings'
    ``tls_cert``/``tls_key``/``tls_client_ca``. ``reuse_port`` lets several
    worker processes bind the same port; the kernel spreads connections.
    """

    def __init__(
        self,
        handler: FrameHandler,
        settings: MLLPSettings,
        ssl_context: ssl.SSLContext | None = None,
        *,
        listener: str = "mllp",
        on_ack: AckObserver | None = None,
    ) -> None:
        """``on_ack`` is told of every ACK written: its code and the seconds since its block arrived."""
        self.handler = handler
        self.on_ack = on_ack
        self.settings = settings
        self.listener = listener
        self.stats = ListenerStats()
        self._ssl = ssl_context if ssl_context is not None else _context_from_settings(settings)
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()

    @property
    def port(self) -> int:
        """The bound port (the real one when settings asked for port 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("MLLP server is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def tls(self) -> bool:
        return self._ssl is not None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self),
            self.settings.host,
            self.settings.port,
            ssl=self._ssl,
            reuse_port=True,
        )
        log.info("MLLP listener %s on %s:%d (tls=%s)", self.listener, self.settings.host, self.port, self.tls)

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop accepting, let each connection answer what it already received, then close."""
        if self._server is None:
            return
        self._server.close()
        connections = list(self._connections)
        for connection in connections:
            connection.stop_reading()
        workers = [c.worker for c in connections if c.worker is not None]
        if workers:
            _, pending = await asyncio.wait(workers, timeout=grace_s)
            for task in pending:
                task.cancel()
        for connection in connections:
            connection.close()
        await self._server.wait_closed()
        self._server = None
        log.info("MLLP listener %s stopped: %s", self.listener, self.stats.snapshot())


class _Connection(asyncio.Protocol):
    """One client connection: decode on arrival, handle in order on a worker task."""

    def __init__(self, server: MLLPServer) -> None:
        self._server = server
        self._stats = server.stats
        self._decoder = MLLPDecoder(server.settings.max_message_bytes)
        self._queue: collections.deque[tuple[Decoded, float]] = collections.deque()  # (block, arrival)
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._receipt = Receipt(server.listener, "?")
        self._waiter: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._last_activity = self._loop.time()
        self._reading_paused = False
        self._busy = False
        self._done = False  # no more input: EOF, stop, idle or lost
        self._lost = False
        self._junk_seen = 0
        self._incomplete_seen = 0
        self.worker: asyncio.Task[None] | None = None

    # -- asyncio.Protocol callbacks -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop transports are not asyncio.Transport subclasses but offer the same API
        self._transport = cast(asyncio.Transport, transport)
        self._receipt = Receipt(self._server.listener, _peer(transport))
        self._server._connections.add(self)
        self._stats.connections_open += 1
        self._stats.connections_total += 1
        self._arm_idle_timer(self._server.settings.idle_timeout_s)
        self.worker = self._loop.create_task(self._serve())
        log.debug("MLLP connection from %s", self._receipt.peer)

    def data_received(self, data: bytes) -> None:
        self._last_activity = self._loop.time()
        self._stats.bytes_in += len(data)
        items = self._decoder.feed(data)
        if self._decoder.junk_bytes != self._junk_seen or self._decoder.incomplete_frames != self._incomplete_seen:
            self._sync_decoder_counters()
        if not items:
            return
        arrived = self._loop.time()
        self._queue.extend((item, arrived) for item in items)
        self._wake()
        if len(self._queue) >= QUEUE_HIGH and not self._reading_paused and self._transport is not None:
            self._transport.pause_reading()
            self._reading_paused = True

    def eof_received(self) -> bool:
        """Half-close: answer what was received, then close.

        Over plain TCP the transport stays open for those ACKs; TLS cannot
        half-close (asyncio closes it and warns if asked to keep it open).
        """
        self._end_input("end of stream")
        return not self._server.tls

    def connection_lost(self, exc: Exception | None) -> None:
        # Blocks not yet handled are dropped: their ACKs could not be delivered,
        # so the sender will resend them and storing them now would duplicate.
        self._lost = True
        self._queue.clear()
        self._end_input("connection lost")
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._server._connections.discard(self)
        self._stats.connections_open -= 1
        log.debug("MLLP connection from %s closed (%s)", self._receipt.peer, type(exc).__name__ if exc else "clean")

    def pause_writing(self) -> None:
        if self._writable is None or self._writable.done():
            self._writable = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    # -- control from the server ---------------------------------------------------

    def stop_reading(self) -> None:
        """Graceful stop: take no more input, finish what is queued."""
        if self._transport is not None and not self._lost and not self._reading_paused:
            self._transport.pause_reading()
            self._reading_paused = True
        self._end_input("listener stopping")

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # -- the worker --------------------------------------------------------------

    async def _serve(self) -> None:
        """Handle queued blocks one at a time, writing each ACK before taking the next."""
        try:
            while (queued := await self._next()) is not None:
                item, arrived = queued
                self._busy = True
                try:
                    reply = await self._dispatch(item)
                finally:
                    self._busy = False
                if self._lost:
                    continue
                await self._send(reply, item, arrived)
                if reply.application is not None:
                    await self._send_application(reply)
        except Exception as exc:
            # Even the handler's fallback answer failed: this connection cannot keep its
            # ACKs in order, so it is closed and the sender resends. Type only, never text.
            log.error(
                "MLLP connection from %s closed after %s answering a block", self._receipt.peer, type(exc).__name__
            )
        finally:
            self.close()

    async def _next(self) -> tuple[Decoded, float] | None:
        while not self._queue:
            if self._done:
                return None
            self._waiter = self._loop.create_future()
            await self._waiter
        if self._reading_paused and len(self._queue) <= QUEUE_LOW and not self._done:
            assert self._transport is not None
            self._transport.resume_reading()
            self._reading_paused = False
        return self._queue.popleft()

    async def _dispatch(self, item: Decoded) -> Reply:
        handler = self._server.handler
        try:
            if isinstance(item, bytes):
                return await handler.handle(item, self._receipt)
            self._stats.frames_too_large += 1
            return handler.reject(item, self._receipt)
        except Exception as exc:
            # The handler promises not to raise; if it does anyway the frame is
            # still answered, in order. Type only: the text may quote the message.
            log.error("MLLP handler raised %s for a block from %s", type(exc).__name__, self._receipt.peer)
            return handler.fail(self._receipt)

    async def _send(self, reply: Reply, item: Decoded, arrived: float) -> None:
        """Write the ACK, then log it: a log line never claims an answer that was not sent."""
        assert self._transport is not None
        if self._writable is not None and not self._writable.done():
            await self._writable
        if self._lost:
            return
        if reply.ack is None:
            self._stats.acks_withheld += 1
            log.debug("no ACK for control_id=%r from %s: MSH-15 asked for none", reply.control_id, self._receipt.peer)
            return
        self._transport.write(encode_frame(reply.ack))
        self._last_activity = self._loop.time()
        self._stats.record(reply)
        if self._server.on_ack is not None:
            self._server.on_ack(reply.code, self._loop.time() - arrived)
        if isinstance(item, RejectedFrame):
            held = _rejected_lines.allow(self._receipt.peer.rsplit(":", 1)[0])
            if held is not None:
                log.warning(
                    "MLLP block from %s refused (%s), control id %r; answered %s%s",
                    self._receipt.peer,
                    item.error.code,
                    reply.control_id,
                    reply.code,
                    f" ({held} more refused blocks from this host not logged)" if held else "",
                )
        log.debug(
            "ACK %s %s control_id=%r type=%s peer=%s in=%d out=%d",
            reply.code,
            reply.error_code,
            reply.control_id,
            reply.message_type,
            self._receipt.peer,
            len(item) if isinstance(item, bytes) else len(item.head),
            len(reply.ack),
        )

    async def _send_application(self, reply: Reply) -> None:
        """Write the application ACK (enhanced mode, MSH-16) right after the message's commit ACK."""
        assert reply.application is not None and self._transport is not None
        self._busy = True
        try:
            ack = await reply.application()
        finally:
            self._busy = False
        if ack is None or self._lost:
            return
        if self._writable is not None and not self._writable.done():
            await self._writable
        if self._lost:
            return
        self._transport.write(encode_frame(ack))
        self._last_activity = self._loop.time()
        self._stats.application_acks += 1
        log.debug("application ACK control_id=%r peer=%s", reply.control_id, self._receipt.peer)

    # -- helpers -----------------------------------------------------------------

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _end_input(self, why: str) -> None:
        if self._done:
            return
        self._done = True
        pending = self._decoder.finish()
        self._sync_decoder_counters()
        if pending and (held := _dropped_lines.allow(self._receipt.peer.rsplit(":", 1)[0])) is not None:
            log.warning(
                "MLLP block from %s without end block (%d bytes) dropped: %s%s",
                self._receipt.peer,
                pending,
                why,
                f" ({held} more from this host not logged)" if held else "",
            )
        self._wake()

    def _sync_decoder_counters(self) -> None:
        """Fold the decoder's junk and incomplete-block counts into the listener stats."""
        junk, incomplete = self._decoder.junk_bytes, self._decoder.incomplete_frames
        if junk != self._junk_seen:
            log.debug("MLLP skipped %d bytes outside blocks from %s", junk - self._junk_seen, self._receipt.peer)
        self._stats.junk_bytes += junk - self._junk_seen
        self._stats.incomplete_frames += incomplete - self._incomplete_seen
        self._junk_seen, self._incomplete_seen = junk, incomplete

    def _arm_idle_timer(self, delay: float) -> None:
        self._idle_timer = self._loop.call_later(delay, self._on_idle_timer)

    def _on_idle_timer(self) -> None:
        """Close a connection that neither sent nor was answered for the idle timeout."""
        timeout = self._server.settings.idle_timeout_s
        quiet = self._loop.time() - self._last_activity
        if self._busy or self._queue or quiet < timeout:
            self._arm_idle_timer(max(timeout - quiet, 0.05) if not self._busy else timeout)
            return
        self._stats.idle_closed += 1
        log.info("MLLP connection from %s idle for %.0f s, closing", self._receipt.peer, quiet)
        self._end_input("idle timeout")
        self.close()


def _peer(transport: asyncio.BaseTransport) -> str:
    address = transport.get_extra_info("peername")
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)
