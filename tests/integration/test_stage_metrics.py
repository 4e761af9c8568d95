"""Stage, ACK and delivery latency and consumer lag on /metrics, read by Prometheus's own parser."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from carehub.connectors.mllp import MLLPClient, ack_code
from carehub.core.principal import OPS_READ
from carehub.demo_receivers import DemoRecipient
from carehub.hub import Hub
from tests.authkit import TEST_ISSUER
from tests.conftest import FEED
from tests.integration.conftest import eventually

pytestmark = pytest.mark.integration
STAGES = ("normalize", "route", "deliver")
DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "carehub.json"
METRIC = re.compile(r"\bcarehub_[a-z0-9_]+")


async def _scrape(http_port: int) -> str:
    """GET /metrics over a real socket with an ops token (the hub answers on this same loop)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{http_port}/metrics", headers=TEST_ISSUER.headers(OPS_READ)) as response,
    ):
        assert response.status == 200
        return await response.text()


def _queries(node: Any) -> list[str]:
    """Every PromQL text in a Grafana dashboard: panel target ``expr`` and variable ``query`` strings."""
    if isinstance(node, dict):
        found = [v for k, v in node.items() if k in ("expr", "query", "definition") and isinstance(v, str)]
        return found + [q for v in node.values() for q in _queries(v)]
    if isinstance(node, list):
        return [q for v in node for q in _queries(v)]
    return []


def _exported(body: str) -> set[str]:
    """The series names a scrape can hold, from its HELP/TYPE families (also those with no sample yet)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(body):
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        else:
            names.add(family.name)
    return names


def _samples(body: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The exposition read by Prometheus's own parser: (series, labels) -> value."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def _of(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> list[float]:
    """Values of ``name`` whose labels include ``labels``, in exposition order."""
    want = set(labels.items())
    return [value for (series, got), value in samples.items() if series == name and want <= got]


async def test_each_stage_reports_a_latency_histogram_and_its_consumer_lag(
    hub: Hub, recipients: dict[str, DemoRecipient]
) -> None:
    client = MLLPClient("127.0.0.1", hub.mllp_port)
    for name in ("02-a01-admit-rivera.hl7", "04-a03-discharge-rivera.hl7"):
        assert ack_code(await client.send((FEED / name).read_bytes())) == "AA"
    await client.close()
    pcp = recipients["pcp-riverside"]
    await eventually(lambda: len(pcp.received) >= 2, 60)

    deadline = asyncio.get_running_loop().time() + 60
    while True:
        body = await _scrape(hub.http_port)
        samples = _samples(body)
        counts = [sum(_of(samples, "carehub_stage_latency_seconds_count", stage=s)) for s in STAGES]
        caught_up = not any(v > 0 for v in _of(samples, "carehub_consumer_lag"))
        if (all(c >= 1 for c in counts) and caught_up) or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.1)
    assert "# TYPE carehub_stage_latency_seconds histogram" in body
    assert "# TYPE carehub_consumer_lag gauge" in body
    for stage in STAGES:
        (count,) = _of(samples, "carehub_stage_latency_seconds_count", stage=stage)
        (inf,) = _of(samples, "carehub_stage_latency_seconds_bucket", stage=stage, le="+Inf")
        (total,) = _of(samples, "carehub_stage_latency_seconds_sum", stage=stage)
        assert count >= 1 and inf == count, stage
        assert total >= 0, stage
        buckets = _of(samples, "carehub_stage_latency_seconds_bucket", stage=stage)
        assert len(buckets) == 16 and buckets == sorted(buckets), f"{stage}: buckets are cumulative"
        lags = _of(samples, "carehub_consumer_lag", stage=stage)
        assert lags, f"{stage}: a lag gauge for the partition it consumed"
        assert all(behind == 0 for behind in lags), f"{stage}: everything consumed, nothing behind"
    # Counters carry _total; the ACKs and their latency are there by listener and code.
    assert any(v >= 1 for v in _of(samples, "carehub_normalized_total")), body
    assert sum(_of(samples, "carehub_mllp_acks_total", code="AA")) == 2
    (acked,) = _of(samples, "carehub_ack_latency_seconds_count", code="AA")
    assert acked == 2
    assert sum(_of(samples, "carehub_delivery_seconds_count", recipient="pcp-riverside", result="ok")) >= 2
    # Every journal call's round trip (the deliveries' admit and outcome, the route stage's writes) is timed.
    (calls,) = _of(samples, "carehub_journal_call_seconds_count")
    (within,) = _of(samples, "carehub_journal_call_seconds_bucket", le="+Inf")
    assert calls >= 4 and within == calls, "at least an admit and an outcome per delivery"

    # docs/grafana/carehub.json queries exactly what this hub exports (a renamed metric breaks it here).
    queries = _queries(json.loads(DASHBOARD.read_text()))
    named = {name for query in queries for name in METRIC.findall(query)}
    assert len(named) >= 10, named
    missing = named - _exported(body)
    assert not missing, f"the dashboard queries metrics /metrics does not export: {missing}"
