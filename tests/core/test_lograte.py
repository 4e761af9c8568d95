"""Rate limits for repeated log lines."""

from __future__ import annotations

import logging

from carehub.core.lograte import LogThrottle, ThrottleFilter


def test_one_line_per_key_per_interval_with_the_count_of_the_rest() -> None:
    now = [0.0]
    throttle = LogThrottle(10.0, clock=lambda: now[0])
    assert throttle.allow("broker") == 0
    assert [throttle.allow("broker") for _ in range(5)] == [None] * 5
    assert throttle.allow("other") == 0
    now[0] = 10.5
    assert throttle.allow("broker") == 5


def test_memory_is_bounded_whatever_the_keys() -> None:
    throttle = LogThrottle(10.0, clock=lambda: 0.0)
    for i in range(LogThrottle.MAX_KEYS * 3):
        throttle.allow(f"k{i}")
    assert len(throttle._last) <= LogThrottle.MAX_KEYS


def test_filter_throttles_only_the_named_loggers() -> None:
    throttle = ThrottleFilter(("aiokafka",), 30.0)

    def record(name: str) -> logging.LogRecord:
        return logging.LogRecord(name, logging.ERROR, __file__, 1, "Unable connect to node %s", ("1",), None)

    assert throttle.filter(record("aiokafka.conn"))
    assert not throttle.filter(record("aiokafka.conn"))
    assert throttle.filter(record("carehub.kafka")) and throttle.filter(record("carehub.kafka"))
