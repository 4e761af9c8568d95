"""Process-local counters, histograms and gauges, rendered in the Prometheus text format.

They describe one process; the durable truth is on the topics. Names and
labels carry types, codes, stages, topics and recipient ids, never message content.

* counters: ``inc`` (``carehub_<name>``);
* histograms: ``observe`` seconds into fixed buckets (``carehub_<name>_bucket{le=...}``, ``_sum``,
  ``_count``) — e.g. ``stage_latency_seconds{stage=...}``;
* gauges: ``set_gauge`` to the latest value — e.g. ``consumer_lag{stage,topic,partition}``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

Labels = tuple[tuple[str, str], ...]
# Seconds: from a few ms (a hop on a quiet machine) to a backlog of minutes.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass
class Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))
    total: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(BUCKETS):
            if value <= bound:
                self.counts[i] += 1
                break
        self.total += value
        self.count += 1


def _labels(labels: Labels, *extra: tuple[str, str]) -> str:
    rendered = ",".join(f'{k}="{v}"' for k, v in (*labels, *extra))
    return f"{{{rendered}}}" if rendered else ""


@dataclass
class Metrics:
    counts: Counter[tuple[str, Labels]] = field(default_factory=Counter)
    histograms: dict[tuple[str, Labels], Histogram] = field(default_factory=dict)
    gauges: dict[tuple[str, Labels], float] = field(default_factory=dict)

    def inc(self, name: str, amount: int = 1, **labels: str) -> None:
        self.counts[(name, tuple(sorted(labels.items())))] += amount

    def observe(self, name: str, seconds: float, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        found = self.histograms.get(key)
        if found is None:
            found = self.histograms[key] = Histogram()
        found.observe(seconds)

    def set_gauge(self, name: str, value: float, **labels: str) -> None:
        self.gauges[(name, tuple(sorted(labels.items())))] = value

    def get(self, name: str, **labels: str) -> int:
        return self.counts[(name, tuple(sorted(labels.items())))]

    def total(self, name: str) -> int:
        return sum(v for (n, _), v in self.counts.items() if n == name)

    def by_label(self, name: str, label: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for (n, labels), value in self.counts.items():
            if n != name:
                continue
            key = dict(labels).get(label, "")
            out[key] = out.get(key, 0) + value
        return out

    def snapshot(self) -> tuple[tuple[tuple[str, Labels], int], ...]:
        return tuple(sorted(self.counts.items()))

    def render(self) -> str:
        lines: list[str] = []
        for name in sorted({n for n, _ in self.counts}):
            lines.append(f"# TYPE carehub_{name} counter")
            for (n, labels), value in sorted(self.counts.items()):
                if n != name:
                    continue
                rendered = ",".join(f'{k}="{v}"' for k, v in labels)
                lines.append(f"carehub_{name}{{{rendered}}} {value}" if rendered else f"carehub_{name} {value}")
        for name in sorted({n for n, _ in self.histograms}):
            lines.append(f"# TYPE carehub_{name} histogram")
            for (n, labels), hist in sorted(self.histograms.items(), key=lambda kv: kv[0]):
                if n != name:
                    continue
                running = 0
                for bound, count in zip(BUCKETS, hist.counts, strict=True):
                    running += count
                    lines.append(f"carehub_{name}_bucket{_labels(labels, ('le', repr(bound)))} {running}")
                lines.append(f"carehub_{name}_bucket{_labels(labels, ('le', '+Inf'))} {hist.count}")
                lines.append(f"carehub_{name}_sum{_labels(labels)} {hist.total:.6f}")
                lines.append(f"carehub_{name}_count{_labels(labels)} {hist.count}")
        for name in sorted({n for n, _ in self.gauges}):
            lines.append(f"# TYPE carehub_{name} gauge")
            for (n, labels), level in sorted(self.gauges.items()):
                if n == name:
                    lines.append(f"carehub_{name}{_labels(labels)} {level:g}")
        return "\n".join(lines) + "\n"
