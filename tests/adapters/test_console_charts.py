"""The console's inline SVG charts: throughput and latency per time bucket, drawn from plain values."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from carehub.adapters.console.views import latency_svg, throughput_svg
from carehub.core.clock import iso

SINCE = datetime(2026, 12, 1, tzinfo=UTC)
UNTIL = SINCE + timedelta(hours=24)


def _at(hours: float) -> str:
    return iso(SINCE + timedelta(hours=hours))


def test_latency_is_drawn_as_p50_and_p99_per_bucket_with_a_point_per_bucket_that_has_deliveries() -> None:
    points = [(_at(1.5), 0.2), (_at(1.6), 0.4), (_at(1.7), 3.0), (_at(20.2), 1.0), ("not a time", 9.0)]
    svg = latency_svg(points, SINCE, UNTIL)
    p50 = re.search(r'<polyline points="([^"]*)" fill="none" stroke="[^"]+" id="p50"', svg)
    p99 = re.search(r'<polyline points="([^"]*)" fill="none" stroke="[^"]+" id="p99"', svg)
    assert p50 is not None and p99 is not None
    assert len(p50.group(1).split()) == 2 and len(p99.group(1).split()) == 2, "two buckets had deliveries"
    (x1, y1), (x2, _) = (tuple(map(float, p.split(","))) for p in p99.group(1).split())
    assert x1 < x2 and y1 == 14.0, "the slowest bucket's p99 (3 s) is the top of the chart"
    assert "top 3.000 s" in svg


def test_an_empty_window_draws_empty_charts() -> None:
    assert 'points=""' in latency_svg([], SINCE, UNTIL)
    assert throughput_svg([], SINCE, UNTIL).count('height="0.0"') == 24
