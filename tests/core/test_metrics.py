"""The hub's metrics through prometheus_client: declared names, HELP/TYPE, _total, escaping, read-back."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from carehub.core.metrics import CATALOG, PREFIX, Metrics, exported_names


def test_every_metric_has_help_and_type_and_counters_end_in_total() -> None:
    m = Metrics()
    m.inc("delivered", recipient="pcp")
    body = m.render()
    for name, spec in CATALOG.items():
        exposed = PREFIX + name + ("_total" if spec.kind == "counter" else "")
        assert spec.help and f"# HELP {exposed} {spec.help}" in body, name
        assert f"# TYPE {exposed} {spec.kind}" in body, name
    assert 'carehub_delivered_total{recipient="pcp"} 1.0' in body
    assert "_created" not in body
    families = {f.name: f.type for f in text_string_to_metric_families(body)}
    assert families["carehub_delivered"] == "counter" and families["carehub_stage_latency_seconds"] == "histogram"
    counters = {PREFIX + n + "_total" for n, spec in CATALOG.items() if spec.kind == "counter"}
    bare = {PREFIX + n for n, spec in CATALOG.items() if spec.kind == "counter"}
    assert counters <= exported_names() and not bare & exported_names()


def test_label_values_are_escaped_and_read_back_by_a_prometheus_parser() -> None:
    m = Metrics()
    awkward = 'clinic "north"\\east\nwing'
    m.inc("routed", 2, recipient=awkward)
    m.observe("delivery_seconds", 0.03, recipient=awkward, result="ok")
    m.set_gauge("consumer_lag", 7, stage="route", topic="care.events", partition="0")
    body = m.render()
    assert 'recipient="clinic \\"north\\"\\\\east\\nwing"' in body
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }
    assert samples[("carehub_routed_total", (("recipient", awkward),))] == 2
    assert samples[("carehub_delivery_seconds_count", (("recipient", awkward), ("result", "ok")))] == 1
    bucket = ("carehub_delivery_seconds_bucket", (("le", "0.05"), ("recipient", awkward), ("result", "ok")))
    assert samples[bucket] == 1
    assert samples[("carehub_consumer_lag", (("partition", "0"), ("stage", "route"), ("topic", "care.events")))] == 7


def test_counters_read_back_by_labels_and_in_total() -> None:
    m = Metrics()
    m.inc("consent", outcome="permit", rule="tpo-class")
    m.inc("consent", 3, outcome="deny", rule="part2-no-consent")
    assert m.get("consent", outcome="deny", rule="part2-no-consent") == 3
    assert m.get("consent", outcome="permit", rule="other") == 0
    assert m.total("consent") == 4
    assert m.by_label("consent", "outcome") == {"permit": 1, "deny": 3}


def test_two_hubs_in_one_process_keep_their_own_counts() -> None:
    a, b = Metrics(), Metrics()
    a.inc("audited")
    assert (a.total("audited"), b.total("audited")) == (1, 0)


def test_an_undeclared_name_or_the_wrong_labels_is_refused() -> None:
    m = Metrics()
    with pytest.raises(KeyError, match="CATALOG"):
        m.inc("no_such_counter")
    with pytest.raises(KeyError, match="not a histogram"):
        m.observe("delivered", 1.0, recipient="x")
    with pytest.raises(ValueError):
        m.inc("delivered", colour="red")
