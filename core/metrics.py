"""Process-local counters, rendered in the Prometheus text format.

Counters describe one process; the durable truth is on the topics. Names and
labels carry types, codes and recipient ids, never message content.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

Labels = tuple[tuple[str, str], ...]


@dataclass
class Metrics:
    counts: Counter[tuple[str, Labels]] = field(default_factory=Counter)

    def inc(self, name: str, amount: int = 1, **labels: str) -> None:
        self.counts[(name, tuple(sorted(labels.items())))] += amount

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
        return "\n".join(lines) + "\n"
