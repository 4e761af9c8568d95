"""Faults against a real broker, real HTTP recipients and the real hub wiring.

* a recipient down for a while gets everything once it is back, in order per patient;
* a recipient answering 4xx fills the dead-letter topic; ``carehub dlq replay`` delivers once it is fixed;
* the delivery worker killed mid-stream and restarted: everything arrives, repeats carry the same key.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from carehub.hub import Hub
from core.settings import DeliverySettings, Settings
from tests.conftest import CONFIG
from tests.delivery.helpers import delivery, produce
from tests.delivery.recipients import HttpRecipient
from tests.integration.conftest import eventually, hub_settings

pytestmark = pytest.mark.integration

FAST = DeliverySettings(timeout_s=2.0, max_attempts=40, backoff_initial_s=0.05, backoff_max_s=0.4,
                        breaker_failures=3, breaker_reset_s=0.3)


def settings(tmp_path: Path, broker: str, **delivery: object) -> Settings:
    config = tmp_path / "config"
    if not config.exists():
        shutil.copytree(CONFIG, config, ignore=shutil.ignore_patterns("schemas"))
    s = hub_settings(config, broker)
    return replace(s, database_url=f"sqlite:///{tmp_path / 'journal.db'}", delivery=replace(FAST, **delivery))


@pytest.fixture
async def recipient() -> AsyncIterator[HttpRecipient]:
    far = HttpRecipient()
    yield far
    await far.stop()


async def start_hub(s: Settings) -> Hub:
    hub = Hub(s, roles=("streams",))
    await hub.start()
    return hub


def per_patient(seen: list[tuple[str, str, int]]) -> dict[str, list[int]]:
    """First arrival of each key, grouped by patient, in arrival order."""
    order: dict[str, list[int]] = {}
    firsts: set[str] = set()
    for key, patient, seq in seen:
        if key not in firsts:
            firsts.add(key)
            order.setdefault(patient, []).append(seq)
    return order


async def test_a_recipient_down_for_a_while_gets_everything_in_order(
    broker: str, tmp_path: Path, recipient: HttpRecipient
) -> None:
    s = settings(tmp_path, broker)
    hub = await start_hub(s)
    try:
        patients = ["RGH|P1", "RGH|P2", "RGH|P3"]
        records = [delivery(n, patient=p, endpoint=recipient.url) for n in range(6) for p in patients]
        await produce(broker, hub.topics.deliveries, records)
        await eventually(lambda: hub.metrics.total("delivery_retried") >= 3, timeout_s=20)
        await asyncio.sleep(1.0)  # down for a while: retries pile up, later deliveries queue
        await recipient.start()
        await eventually(lambda: len(recipient.counts()) == len(records), timeout_s=30)
        assert per_patient(recipient.seen) == {p: list(range(6)) for p in patients}
        assert set(recipient.counts()) == {r.idempotency_key for r in records}
        journal = hub._delivery.journal if hub._delivery else None
        assert journal is not None
        await eventually(lambda: journal.outcome_counts().get("delivered") == len(records))
        first = journal.attempts(records[0].delivery_id)
        assert len(first) > 1 and first[0]["result"] in ("transient", "circuit-open") and first[-1]["result"] == "ok"
        assert hub.metrics.total("delivery_queued") > 0, "later deliveries waited behind the retried one"
        assert journal.queued_count() == 0 and journal.holder(records[0].recipient_id, "RGH|P1") is None
    finally:
        await hub.stop()
