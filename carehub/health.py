"""Whether a dependency (the Kafka broker, the PostgreSQL journal) is reachable, for /ready.

A periodic probe plus what callers observe. Logs one line when the
dependency is lost and one when it is back, nothing in between. Before it
reports "back" it runs ``on_back`` (for the broker: topic provisioning, since
a broker that lost its storage comes back without topics) and stays down if
that fails. Probes back off from ``interval_s`` to ``max_interval_s`` while
the dependency stays away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class DependencyHealth:
    def __init__(
        self,
        what: str,
        name: str,
        probe: Callable[[], Awaitable[bool]],
        *,
        impact: str,
        errors: tuple[type[BaseException], ...],
        on_back: Callable[[], Awaitable[None]] | None = None,
        interval_s: float = 1.0,
        max_interval_s: float = 2.0,
    ) -> None:
        """``errors`` are the exceptions a failed probe (or ``on_back``) may raise: they mean "down"."""
        self._label = f"{what} {name}"
        self._probe = probe
        self._impact = impact
        self._errors = errors
        self._on_back = on_back
        self._interval = interval_s
        self._max_interval = max_interval_s
        self._healthy = True
        self._lost_at = 0.0
        self._task: asyncio.Task[None] | None = None

    @property
    def healthy(self) -> bool:
        return self._healthy

    def observe(self, ok: bool) -> None:
        """A caller's request failed (``ok`` False): down until a probe says otherwise."""
        if not ok and self._healthy:
            self._mark_lost("a request failed")

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._watch(), name=f"health:{self._label}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _watch(self) -> None:
        delay = self._interval
        while True:
            await asyncio.sleep(delay)
            ok = await self._check()
            if ok and not self._healthy:
                self._healthy = True
                log.warning("%s is back after %.1f s", self._label, time.monotonic() - self._lost_at)
            elif not ok and self._healthy:
                self._mark_lost("it does not answer")
            delay = self._interval if self._healthy else min(delay * 2, self._max_interval)

    async def _check(self) -> bool:
        try:
            if not await self._probe():
                return False
            if not self._healthy and self._on_back is not None:
                await self._on_back()
        except self._errors:
            return False
        return True

    def _mark_lost(self, why: str) -> None:
        self._healthy = False
        self._lost_at = time.monotonic()
        log.warning("%s lost (%s): %s", self._label, why, self._impact)
