"""Stage latency and consumer lag on /metrics: where an event's time went, read as an operator would."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest

from carehub.connectors.mllp import MLLPClient, ack_code
from carehub.core.principal import OPS_READ
from carehub.demo_receivers import DemoRecipient
from carehub.hub import Hub
from tests.authkit import TEST_ISSUER
from tests.conftest import FEED
from tests.integration.conftest import eventually

pytestmark = pytest.mark.integration
STAGES = ("normalize", "route", "deliver")


async def _scrape(http_port: int) -> str:
    """GET /metrics over a real socket with an ops token (the hub answers on this same loop)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{http_port}/metrics", headers=TEST_ISSUER.headers(OPS_READ)) as response,
    ):
        assert response.status == 200
        return await response.text()


def _value(body: str, pattern: str) -> float | None:
    found = re.search(rf"^{pattern} (\S+)$", body, re.MULTILINE)
    return float(found.group(1)) if found else None


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
        counts = [_value(body, rf'carehub_stage_latency_seconds_count\{{stage="{s}"\}}') or 0 for s in STAGES]
        caught_up = not re.search(r"^carehub_consumer_lag\{.*\} [1-9]", body, re.MULTILINE)
        if (all(c >= 1 for c in counts) and caught_up) or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.1)
    assert "# TYPE carehub_stage_latency_seconds histogram" in body
    assert "# TYPE carehub_consumer_lag gauge" in body
    for stage in STAGES:
        count = _value(body, rf'carehub_stage_latency_seconds_count\{{stage="{stage}"\}}')
        inf = _value(body, rf'carehub_stage_latency_seconds_bucket\{{stage="{stage}",le="\+Inf"\}}')
        total = _value(body, rf'carehub_stage_latency_seconds_sum\{{stage="{stage}"\}}')
        assert count is not None and count >= 1 and inf == count, stage
        assert total is not None and total >= 0, stage
        buckets = [
            float(v)
            for v in re.findall(
                rf'^carehub_stage_latency_seconds_bucket\{{stage="{stage}",le="[^"]+"\}} (\S+)$', body, re.MULTILINE
            )
        ]
        assert buckets == sorted(buckets), f"{stage}: buckets are cumulative"
        lags = re.findall(
            rf'^carehub_consumer_lag\{{partition="\d+",stage="{stage}",topic="([^"]+)"\}} (\d+)$', body, re.MULTILINE
        )
        assert lags, f"{stage}: a lag gauge for the partition it consumed"
        assert all(int(behind) == 0 for _topic, behind in lags), f"{stage}: everything consumed, nothing behind"
    # The counters that were there before are still there under their names.
    assert re.search(r'^carehub_normalized\{kind="[a-z-]+"\} [1-9]', body, re.MULTILINE), body
