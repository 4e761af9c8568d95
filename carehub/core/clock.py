"""The one clock format carehub writes: UTC, milliseconds, ``Z`` (``2026-11-03T22:00:01.250Z``).

``now`` is the hub's wall clock. It can be set (``set_clock``) for a simulation: the scorecard's
simulated-month test plays a month of traffic through a real hub in minutes, with every journal
timestamp (delivery receipts, Task changes, overdue flags) read from the simulated time. Nothing
in production sets it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

_source: Callable[[], datetime] | None = None


def set_clock(source: Callable[[], datetime] | None) -> None:
    """Read ``now`` from ``source`` (an aware datetime) from here on; None: the system clock again."""
    global _source
    _source = source


def travel_to(moment: datetime) -> None:
    """From here on ``now`` starts at ``moment`` and runs at the real pace (a replay on its own timeline)."""
    start = time.monotonic()
    set_clock(lambda: moment + timedelta(seconds=time.monotonic() - start))


def now() -> datetime:
    """Now, an aware UTC datetime (the system clock unless a simulation set another)."""
    return (_source or _system)().astimezone(UTC)


def _system() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """An aware datetime as carehub writes times (UTC, milliseconds, ``Z``)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    """Now, as carehub writes times."""
    return iso(now())


class ManualClock:
    """A clock that moves only when told (tests, replays): call it for now, ``advance`` to move it."""

    def __init__(self, start: datetime) -> None:
        self.moment = start

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, seconds: float) -> datetime:
        self.moment += timedelta(seconds=seconds)
        return self.moment
