"""Faults against a real broker, real HTTP recipients and the real hub wiring.

* a recipient down for a while gets everything once it is back, in order per patient;
* an open circuit holds deliveries without logging or journaling each one; a 429's Retry-After is honoured;
* the delivery worker killed mid-stream and restarted: everything arrives, repeats carry the same key.

Dead letters and ``carehub dlq replay``: test_dlq_replay.py (with the helpers here).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer  # type: ignore[import-untyped]

from carehub.core.settings import DeliverySettings, Settings
from carehub.hub import Hub
from carehub.kafka import ensure_topics
from tests.conftest import CONFIG
from tests.delivery.helpers import delivery, produce
from tests.delivery.recipients import HttpRecipient
from tests.integration.conftest import eventually, hub_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAST = DeliverySettings(
    timeout_s=2.0, max_attempts=40, backoff_initial_s=0.05, backoff_max_s=0.4, breaker_failures=3, breaker_reset_s=0.3
)


def settings(tmp_path: Path, broker: str, **delivery: object) -> Settings:
    config = tmp_path / "config"
    if not config.exists():
        shutil.copytree(CONFIG, config, ignore=shutil.ignore_patterns("schemas"))
    s = hub_settings(config, broker)
    return replace(s, database_url=f"sqlite:///{tmp_path / 'journal.db'}", delivery=replace(FAST, **delivery))


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
        # a queued delivery leaves the queue just after its outcome is journaled (delivery_flow drains the queue)
        await eventually(
            lambda: journal.queued_count() == 0 and journal.holder(records[0].recipient_id, "RGH|P1") is None
        )
    finally:
        await hub.stop()


async def test_a_delivery_sent_to_retry_holds_its_pair_for_the_rest_of_its_own_batch(
    broker: str, tmp_path: Path, recipient: HttpRecipient
) -> None:
    """Three deliveries for one pair in one batch, the first answered 503 once: the other
    two queue behind it, and the recipient has them in order (0 retried, then 1, then 2)."""
    await recipient.start()
    s = settings(tmp_path, broker)
    records = [delivery(n, patient="RGH|P9", endpoint=recipient.url) for n in range(3)]
    recipient.fail_first = {records[0].idempotency_key}
    topic = s.kafka.topic_prefix + "deliveries"
    ensure_topics(broker, [topic], s.kafka.partitions)
    await produce(broker, topic, records)  # on the topic before the stage starts: one batch
    hub = await start_hub(s)
    try:
        assert hub.topics.deliveries == topic
        await eventually(lambda: len(recipient.seen) == 4, timeout_s=20)
        assert [seq for _, _, seq in recipient.seen] == [0, 0, 1, 2], recipient.seen
        assert hub.metrics.total("delivery_queued") == 2, "both waited behind the retried one"
    finally:
        await hub.stop()


async def test_an_open_circuit_logs_its_state_changes_not_every_held_delivery(
    broker: str, tmp_path: Path, recipient: HttpRecipient, caplog: pytest.LogCaptureFixture
) -> None:
    """30 deliveries to a recipient that is down: the circuit opens once; the held retries are not logged."""
    caplog.set_level(logging.INFO, logger="carehub.streams")
    hub = await start_hub(settings(tmp_path, broker, breaker_reset_s=2.0))
    try:
        records = [delivery(n, patient=f"RGH|C{n}", endpoint=recipient.url) for n in range(30)]
        await produce(broker, hub.topics.deliveries, records)
        await eventually(lambda: hub.metrics.total("delivery_retried") >= 60, timeout_s=30)
        opened = [r for r in caplog.records if r.getMessage().startswith("circuit open")]
        held = [r for r in caplog.records if "result=circuit-open" in r.getMessage()]
        assert 1 <= len(opened) <= 3, [r.getMessage() for r in opened]  # one per reset period at most
        assert held == [], "a delivery held by the open circuit is not logged one by one"
        assert opened[0].getMessage() == f"circuit open: endpoint=http://127.0.0.1:{recipient.port}"
        await recipient.start()
        await eventually(lambda: len(recipient.counts()) == len(records), timeout_s=30)
        assert any(r.getMessage().startswith("circuit closed") for r in caplog.records)
        print(f"{hub.metrics.total('delivery_retried')} retries held; {len(caplog.records)} log lines from streams")
    finally:
        await hub.stop()


async def test_deliveries_held_by_an_open_circuit_park_without_growing_and_a_live_recipient_keeps_pace(
    broker: str, tmp_path: Path, recipient: HttpRecipient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """40 deliveries to a recipient that is down and 40 to one that is up, through one worker.

    The live recipient gets all of its 40 while the other is down. A held delivery is journaled as
    held once, not once per cycle, and comes back about once per reset period (it used to cycle every
    backoff, ~0.05 s here, with a journal row, a consent check and a retry record each time).
    """
    down = HttpRecipient()  # never started: its port refuses connections
    monkeypatch.setenv("CAREHUB_ENDPOINT_PAYER_ACME", down.url)
    reset_s = 1.0
    hub = await start_hub(settings(tmp_path, broker, breaker_reset_s=reset_s, backoff_max_s=2.0))
    await recipient.start()
    try:
        held = [delivery(n, recipient="payer-acme", patient=f"RGH|H{n}", endpoint=down.url) for n in range(40)]
        live = [delivery(n, patient=f"RGH|L{n}", endpoint=recipient.url) for n in range(40)]
        await produce(broker, hub.topics.deliveries, held + live)
        await eventually(lambda: len(recipient.counts()) == len(live), timeout_s=60)
        await eventually(lambda: hub.metrics.total("delivery_retried") >= 2 * len(held), timeout_s=60)
        before, started = hub.metrics.total("delivery_retried"), asyncio.get_running_loop().time()
        await asyncio.sleep(3 * reset_s)
        cycles = hub.metrics.total("delivery_retried") - before
        window = asyncio.get_running_loop().time() - started
        assert cycles <= len(held) * (window / reset_s + 2), f"{cycles} retry records in {window:.1f} s"
        journal = hub._delivery.journal if hub._delivery else None
        assert journal is not None
        for d in held:
            rows = journal.attempts(d.delivery_id)
            assert sum(1 for r in rows if r["result"] == "circuit-open") <= 1, rows
            assert len(rows) <= FAST.breaker_failures + 4, rows  # real tries and probes only, not every cycle
        assert set(recipient.counts()) == {d.idempotency_key for d in live}
    finally:
        await hub.stop()


def run_cli(*argv: str, token: str = "") -> subprocess.CompletedProcess[str]:
    carehub = Path(sys.executable).parent / "carehub"
    env = {**os.environ, "CAREHUB_TOKEN": token}
    return subprocess.run([str(carehub), *argv], capture_output=True, text=True, timeout=60, env=env)


async def test_a_429_with_retry_after_is_honoured(broker: str, tmp_path: Path, recipient: HttpRecipient) -> None:
    recipient.status, recipient.headers = 429, {"Retry-After": "2"}
    await recipient.start()
    hub = await start_hub(settings(tmp_path, broker, backoff_initial_s=0.05, backoff_max_s=5.0))
    try:
        await produce(broker, hub.topics.deliveries, [delivery(1, patient="RGH|R1", endpoint=recipient.url)])
        await eventually(lambda: len(recipient.seen) == 1)
        recipient.status, recipient.headers = 200, {}
        await eventually(lambda: hub.metrics.total("delivered") == 1)
        gap = recipient.arrivals[1] - recipient.arrivals[0]
        assert gap >= 1.9, f"the retry came {gap:.2f} s later; the recipient asked for 2 s (backoff alone: 0.05 s)"
    finally:
        await hub.stop()


async def test_the_delivery_worker_killed_mid_stream_loses_nothing(
    broker: str, tmp_path: Path, recipient: HttpRecipient
) -> None:
    await recipient.start()
    s = settings(tmp_path, broker)
    first = await start_hub(s)
    records = [delivery(n, patient=f"RGH|K{n % 5}", endpoint=recipient.url) for n in range(200)]
    await produce(broker, first.topics.deliveries, records)
    await eventually(lambda: len(recipient.seen) >= 20)
    await first.stop()  # mid-stream: some delivered, offsets of others not committed
    at_stop = len(recipient.counts())
    second = await start_hub(s)
    try:
        await eventually(lambda: len(recipient.counts()) == len(records), timeout_s=40)
        assert set(recipient.counts()) == {r.idempotency_key for r in records}
        repeats = {key: n for key, n in recipient.counts().items() if n > 1}
        assert all(key in {r.idempotency_key for r in records} for key in repeats), "a repeat carries the same key"
        assert per_patient(recipient.seen) == {f"RGH|K{p}": [n for n in range(200) if n % 5 == p] for p in range(5)}
        print(f"killed after {at_stop} of {len(records)}; repeats after restart: {len(repeats)}")
    finally:
        await second.stop()


async def read_all(bootstrap: str, topic: str, count: int) -> list[bytes]:
    return [value for _, value in await read_keyed(bootstrap, topic, count)]


async def read_keyed(bootstrap: str, topic: str, count: int) -> list[tuple[bytes, bytes]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    values: list[tuple[bytes, bytes]] = []
    try:
        while len(values) < count:
            batch = await consumer.getmany(timeout_ms=2000)
            if not batch:
                break
            values += [(m.key, m.value) for msgs in batch.values() for m in msgs]
    finally:
        await consumer.stop()
    return values
