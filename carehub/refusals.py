"""Refused inbound messages onto the ``inbound.refused`` topic, off the answer path.

The MLLP handler (and the rest-hook receiver) tell :meth:`RefusalRecorder.record` of each refusal
after building its answer; a background task writes them to Kafka in order, where the message
journal's consumer picks them up beside the accepted messages. Every ingest process writes its own
refusals to the one topic, so the journal shows those of all of them. Only the
refusal waits here, never the sender: while the broker is down (the very case that answers AR
207) they are kept, up to ``capacity``, and written when it is back; past that the oldest are
dropped and counted (``carehub_refusals_dropped_total``, as is a refusal too large to write).
Nothing about the message is logged.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable

from carehub.core.errors import CarehubError, MessageTooLargeError
from carehub.core.lograte import LogThrottle
from carehub.core.metrics import Metrics
from carehub.core.records import InboundRefusal

log = logging.getLogger(__name__)

Publish = Callable[[InboundRefusal], Awaitable[None]]
_waiting_lines = LogThrottle(30.0)


class RefusalRecorder:
    def __init__(self, publish: Publish, metrics: Metrics, *, capacity: int = 10_000, retry_s: float = 1.0) -> None:
        self._publish = publish
        self._metrics = metrics
        self._capacity = capacity
        self._retry_s = retry_s
        self._pending: collections.deque[InboundRefusal] = collections.deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        return len(self._pending)

    def record(self, refusal: InboundRefusal) -> None:
        """Queue one refusal for the topic; never blocks, never raises."""
        if len(self._pending) >= self._capacity:
            self._pending.popleft()
            self._metrics.inc("refusals_dropped")
        self._pending.append(refusal)
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._drain()

    async def _drain(self) -> None:
        while self._pending:
            refusal = self._pending[0]
            try:
                await self._publish(refusal)
            except asyncio.CancelledError:
                raise
            except MessageTooLargeError:  # this one record can never be written: do not hold the others up
                self._pending.popleft()
                self._metrics.inc("refusals_dropped")
                continue
            except (CarehubError, OSError) as exc:
                held = _waiting_lines.allow("waiting")
                if held is not None:
                    log.warning("%d refused messages not yet journaled: %s", len(self._pending), type(exc).__name__)
                await asyncio.sleep(self._retry_s)
                continue
            self._pending.popleft()
            self._metrics.inc("refusals_recorded", source=refusal.source)

    async def stop(self, grace_s: float = 2.0) -> None:
        """Write what is queued (for up to ``grace_s``), then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace_s):
                while self._pending:
                    await asyncio.sleep(0.01)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if self._pending:
            log.warning("%d refused messages not journaled at shutdown (their senders got their answers)",
                        len(self._pending))  # fmt: skip
