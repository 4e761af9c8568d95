"""Rate limits for repeated log lines: one line per key per interval, with a count of the rest.

Used where one cause can repeat per message (a broker outage, a stream of
malformed input) so the log says what happened without a line per message.
State changes (broker lost / back) are logged by their owners once each and
need no throttle.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class LogThrottle:
    """``allow(key)`` answers None while ``key`` was logged less than ``interval_s`` ago.

    Otherwise it answers how many lines for ``key`` were held back since the
    last one it allowed (0 the first time), for the caller to append.
    """

    def __init__(self, interval_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    #: Keys remembered at most; past it the memory starts over (bounded whatever the input).
    MAX_KEYS = 1024

    def allow(self, key: str) -> int | None:
        now = self._clock()
        if len(self._last) >= self.MAX_KEYS and key not in self._last:
            self._last.clear()
            self._held.clear()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._held.pop(key, 0)


class ThrottleFilter(logging.Filter):
    """A handler filter: records of loggers under ``prefixes`` pass once per template per interval.

    For third-party loggers (the Kafka clients) that write one line per
    reconnect attempt while a broker is away; carehub's own state-change lines
    say what happened. Other records pass untouched.
    """

    def __init__(self, prefixes: tuple[str, ...], interval_s: float = 30.0) -> None:
        super().__init__()
        self._prefixes = prefixes
        self._throttle = LogThrottle(interval_s)

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        if not any(name == p or name.startswith(p + ".") for p in self._prefixes):
            return True
        return self._throttle.allow(f"{name}:{record.msg}") is not None
