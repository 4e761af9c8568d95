"""The hub's Prometheus metrics, kept by ``prometheus_client`` in one registry per hub.

They describe one process (each worker serves its own ``/metrics``; Prometheus sums them); the
durable truth is on the topics and in the journal. Every metric is declared once in ``CATALOG``
with its kind, HELP text and label names, so the exposition has HELP and TYPE lines, counters end
in ``_total`` and label values are escaped by the library. Labels carry types, codes, stages,
topics and recipient ids, never message content.

* counters: ``inc("delivered", recipient=...)`` -> ``carehub_delivered_total{recipient="..."}``;
* histograms: ``observe`` seconds -> ``carehub_<name>_bucket{le=...}``, ``_sum``, ``_count``;
* gauges: ``set_gauge`` to the latest value -> ``carehub_<name>``.

``get``, ``total`` and ``by_label`` read counters back (the demo's idle wait and tests use them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase

#: The exposition's content type (text format 0.0.4).
CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST
PREFIX = "carehub_"
# Seconds: from a few ms (a hop on a quiet machine) to a backlog of minutes.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# The ``_created`` series double every counter and histogram and no dashboard reads them.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

Kind = Literal["counter", "histogram", "gauge"]


@dataclass(frozen=True, slots=True)
class Spec:
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()


_R = ("recipient",)
CATALOG: Mapping[str, Spec] = {
    # inbound
    "mllp_acks": Spec("counter", "MLLP ACKs written, by listener and ACK code", ("listener", "code")),
    "ack_latency_seconds": Spec(
        "histogram", "Seconds from an MLLP block's arrival to its ACK being written", ("listener", "code")
    ),
    "refusals_recorded": Spec("counter", "Refused inbound messages written to the inbound.refused topic", ("source",)),
    "refusals_dropped": Spec("counter", "Refused inbound messages not journaled: the buffer was full"),
    "normalized": Spec("counter", "Inbound messages turned into CareEvents, by event kind", ("kind",)),
    "duplicates_suppressed": Spec("counter", "CareEvents already seen and not routed again", ("kind",)),
    "consents_from_subscriptions": Spec("counter", "Consents taken from a FHIR subscription source", ("source",)),
    "subscription_recoveries": Spec("counter", "FHIR subscription gaps recovered, by method", ("method",)),
    # stages
    "stage_latency_seconds": Spec(
        "histogram", "Seconds from a record's write to its topic until a stage finished it", ("stage",)
    ),
    "consumer_lag": Spec(
        "gauge", "Records of a partition behind a stage's furthest finished offset", ("stage", "topic", "partition")
    ),
    "journal_call_seconds": Spec(
        "histogram",
        "Seconds from a journal call's queueing until its result was back on the event loop (queue, group, commit,"
        " the loop's delay)",
    ),
    "stage_failed": Spec("counter", "Records a stage could not process and dead-lettered", ("stage",)),
    # routing and consent
    "routed_events": Spec("counter", "CareEvents the route stage finished"),
    "routed": Spec("counter", "Deliveries planned, by recipient", _R),
    "route_unresolved": Spec("counter", "Routing matches whose recipient could not be resolved", ("rule",)),
    "signal": Spec("counter", "Clinical signals raised on routed events", ("flag",)),
    "consent": Spec("counter", "Consent decisions, by outcome and policy rule", ("outcome", "rule")),
    "audited": Spec("counter", "FHIR AuditEvents written"),
    "audit_failed": Spec("counter", "AuditEvents that could not be written"),
    # transition-of-care packets (docs/packet.md)
    "packets_planned": Spec("counter", "Transition-of-care packets planned, by recipient", _R),
    "packet_enrichment": Spec(
        "counter", "Packet enrichments from a FHIR source: complete, or partial (something missing)", ("outcome",)
    ),
    "careplan_updates": Spec("counter", "CarePlan updates planned for a care team member after a Task changed", _R),
    # delivery
    "delivered": Spec("counter", "Deliveries the recipient accepted", _R),
    "delivery_failed": Spec("counter", "Deliveries that failed for good (dead-lettered or unreadable)", _R),
    "delivery_suppressed": Spec("counter", "Deliveries the send-time consent gate refused", _R),
    "delivery_not_needed": Spec("counter", "Corrections not sent: the recipient never had the original", _R),
    "delivery_retried": Spec("counter", "Deliveries moved to a retry topic", _R),
    "delivery_queued": Spec("counter", "Deliveries queued behind a held (recipient, patient) pair", _R),
    "delivery_dead_lettered": Spec("counter", "Deliveries parked as dead letters", _R),
    "delivery_redelivered_skipped": Spec("counter", "Redelivered records already delivered and skipped", _R),
    "delivery_seconds": Spec(
        "histogram", "Seconds from a delivery attempt's start to the recipient's answer", ("recipient", "result")
    ),
    "circuit_changes": Spec("counter", "Circuit breaker state changes, by new state", ("state",)),
    "task_cancelled": Spec("counter", "Referral Tasks cancelled by a correction", _R),
}


def exported_names() -> set[str]:
    """Every series name the exposition can hold (what a dashboard may query)."""
    names: set[str] = set()
    for name, spec in CATALOG.items():
        full = PREFIX + name
        if spec.kind == "counter":
            names.add(f"{full}_total")
        elif spec.kind == "histogram":
            names.update({f"{full}_bucket", f"{full}_sum", f"{full}_count"})
        else:
            names.add(full)
    return names


class Metrics:
    """One hub's metrics: a ``CollectorRegistry`` of its own holding every metric in ``CATALOG``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._metrics: dict[str, MetricWrapperBase] = {}
        #: The labelled child of each (name, kind, labels) once looked up (prometheus_client's ``labels`` checks
        #: and locks on every call; a stage bumps several counters per record).
        self._children: dict[tuple[str, Kind, tuple[tuple[str, str], ...]], MetricWrapperBase] = {}
        for name, spec in CATALOG.items():
            full = PREFIX + name
            if spec.kind == "counter":
                made: MetricWrapperBase = Counter(full, spec.help, spec.labels, registry=self.registry)
            elif spec.kind == "histogram":
                made = Histogram(full, spec.help, spec.labels, registry=self.registry, buckets=BUCKETS)
            else:
                made = Gauge(full, spec.help, spec.labels, registry=self.registry)
            self._metrics[name] = made

    def _child(self, name: str, kind: Kind, labels: Mapping[str, str]) -> MetricWrapperBase:
        key = (name, kind, tuple(labels.items()))
        child = self._children.get(key)
        if child is not None:
            return child
        spec = CATALOG.get(name)
        if spec is None or spec.kind != kind:
            raise KeyError(f"{name!r} is not a {kind} in carehub.core.metrics.CATALOG")
        metric = self._metrics[name]
        child = metric.labels(**labels) if spec.labels else metric
        self._children[key] = child
        return child

    def inc(self, name: str, amount: int = 1, **labels: str) -> None:
        child = self._child(name, "counter", labels)
        assert isinstance(child, Counter)
        child.inc(amount)

    def observe(self, name: str, seconds: float, **labels: str) -> None:
        child = self._child(name, "histogram", labels)
        assert isinstance(child, Histogram)
        child.observe(seconds)

    def set_gauge(self, name: str, value: float, **labels: str) -> None:
        child = self._child(name, "gauge", labels)
        assert isinstance(child, Gauge)
        child.set(value)

    def _counts(self, name: str) -> list[tuple[dict[str, str], int]]:
        if CATALOG.get(name, Spec("gauge", "")).kind != "counter":
            raise KeyError(f"{name!r} is not a counter in carehub.core.metrics.CATALOG")
        total = f"{PREFIX}{name}_total"
        return [
            (dict(sample.labels), int(sample.value))
            for family in self._metrics[name].collect()
            for sample in family.samples
            if sample.name == total
        ]

    def get(self, name: str, **labels: str) -> int:
        """A counter's value for exactly these labels (0 before the first increment)."""
        return sum(value for found, value in self._counts(name) if found == labels)

    def total(self, name: str) -> int:
        """A counter summed over all its labels."""
        return sum(value for _, value in self._counts(name))

    def by_label(self, name: str, label: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for found, value in self._counts(name):
            key = found.get(label, "")
            out[key] = out.get(key, 0) + value
        return out

    def render(self) -> str:
        """The Prometheus text exposition of this hub's registry."""
        return generate_latest(self.registry).decode("utf-8")
