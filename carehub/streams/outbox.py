"""What a stage sent, and the one wait that makes it durable before the stage commits.

A stage hands each output to the producer (acks=all) and keeps the send's
future here. ``durable()`` returns only when every output sent so far is
acknowledged by the broker; an output whose send failed (the broker gone
longer than the producer's own retries) is sent again, with backoff, until it
is acknowledged or the stage is stopped. A stage commits its input offsets
only after ``durable()`` returned (streams.stage), so an input whose offset
is committed always has its outputs on their topics.

The outbox of the running stage batch is found through a context variable, so
code shared by stages (the delivery flow, dead letters) sends through
``AgentContext.send`` without knowing which stage it runs in. With no outbox
in the context (the FHIR heartbeat tick, which sends outside any batch) each
send is awaited to its acknowledgement before the caller goes on.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Protocol

from carehub.core.lograte import LogThrottle

log = logging.getLogger(__name__)
_failures = LogThrottle(10.0)
#: Waits between sends of an output the broker did not acknowledge (seconds; the last one repeats).
BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)

#: A record's Kafka headers.
Headers = tuple[tuple[str, bytes], ...]


class Send(Protocol):
    """(topic, key, value, partition, headers) -> a future resolved when the broker acknowledged the record."""

    def __call__(
        self, topic: str, key: bytes, value: bytes, partition: int | None, headers: Headers = ()
    ) -> Awaitable[asyncio.Future[Any]]: ...


@dataclass(slots=True)
class _Pending:
    topic: str
    key: bytes
    value: bytes
    partition: int | None
    future: asyncio.Future[Any]
    headers: Headers = ()


class Outbox:
    """The outputs of one stage batch, until they are all acknowledged."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._pending: list[_Pending] = []
        self.sent = 0

    async def send(
        self, topic: str, key: bytes, value: bytes, partition: int | None = None, headers: Headers = ()
    ) -> None:
        try:
            future = await self._send(topic, key, value, partition, headers)
        except Exception as exc:  # no metadata, buffer timeout: kept as a failed send, sent again by durable()
            future = asyncio.get_running_loop().create_future()
            future.set_exception(exc)
        self._pending.append(_Pending(topic, key, value, partition, future, headers))
        self.sent += 1

    async def durable(self) -> None:
        """Return when every output sent so far is acknowledged (failed sends are sent again)."""
        tries = 0
        while self._pending:
            pending, self._pending = self._pending, []
            await asyncio.wait([p.future for p in pending])
            failed = [p for p in pending if p.future.exception() is not None]
            if not failed:
                continue
            error = failed[0].future.exception()
            held = _failures.allow("outbox")
            if held is not None:
                log.error("%d outputs not acknowledged (%s); sending them again%s", len(failed),
                          type(error).__name__, f" ({held} more such lines not logged)" if held else "")  # fmt: skip
            await asyncio.sleep(BACKOFF_S[min(tries, len(BACKOFF_S) - 1)])
            tries += 1
            for p in failed:  # in their order, so one partition's outputs keep theirs
                await self.send(p.topic, p.key, p.value, p.partition, p.headers)


CURRENT: contextvars.ContextVar[Outbox | None] = contextvars.ContextVar("carehub_outbox", default=None)


async def send_durably(
    send: Send, topic: str, key: bytes, value: bytes, partition: int | None = None, headers: Headers = ()
) -> None:
    """Send through the running batch's outbox; with none, wait for this one record's acknowledgement."""
    box = CURRENT.get()
    if box is not None:
        await box.send(topic, key, value, partition, headers)
        return
    alone = Outbox(send)
    await alone.send(topic, key, value, partition, headers)
    await alone.durable()
