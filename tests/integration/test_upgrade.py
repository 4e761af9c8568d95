"""An upgraded worker starts where the workers before it stopped, not at the earliest record.

The Faust agents of the first workers committed in the group ``<app id>``; the
stage workers after them read hl7v2.inbound in the group ``<app id>-normalize``;
now the route stage reads it (normalize and route in one hop), in
``<app id>-route``, which has no offsets on it at its first start. Starting from
the earliest record would send every notification again. Here the old group's
offsets are committed at the end of hl7v2.inbound, which holds two messages (as
a worker that handled them leaves it); the upgraded worker must handle only the
message sent after it started, and keep the old group's start as its own.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from carehub.consumer_lag import committed_offsets
from carehub.demo_receivers import DemoRecipient
from carehub.hub import Hub, worker_app_id
from tests.conftest import FEED
from tests.integration.conftest import eventually, hub_settings, send_accepted

pytestmark = pytest.mark.integration
OKAFOR_ADMIT = (FEED / "05-a01-admit-okafor.hl7").read_bytes()
OKAFOR_DISCHARGE = (FEED / "07-a03-discharge-okafor.hl7").read_bytes()
NGUYEN_ADMIT = (FEED / "08-a01-admit-nguyen-lakeside.hl7").read_bytes()


async def _commit_at_end(bootstrap: str, group: str, topic: str) -> dict[TopicPartition, int]:
    """Commit ``group``'s offsets at the end of every partition of ``topic`` (what a Faust worker left)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not tps:
            await consumer.topics()  # metadata not loaded yet
            tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        await consumer.commit(ends)
        return ends
    finally:
        await consumer.stop()


@pytest.mark.parametrize("before", ["faust", "normalize-stage"])
async def test_stages_start_where_the_workers_before_them_stopped(
    broker: str, config_dir: Path, recipients: dict[str, DemoRecipient], before: str
) -> None:
    settings = hub_settings(config_dir, broker)
    ingest = Hub(settings, roles=("ingest",))  # the messages a Faust worker handled before the upgrade
    await ingest.start()
    try:
        await send_accepted(ingest, OKAFOR_ADMIT, OKAFOR_DISCHARGE)
    finally:
        await ingest.stop()
    app_id = worker_app_id(settings)
    inbound = ingest.topics.hl7v2_inbound
    old_group = app_id if before == "faust" else f"{app_id}-normalize"
    ends = await _commit_at_end(broker, old_group, inbound)
    assert sum(ends.values()) == 2, "two messages on the topic, both behind the old group's offsets"

    pcp = recipients["pcp-riverside"]
    hub = Hub(settings)
    await hub.start()
    try:
        await send_accepted(hub, NGUYEN_ADMIT)
        await eventually(lambda: hub.metrics.total("normalized") >= 1, timeout_s=60)
        await eventually(lambda: hub.metrics.total("routed_events") >= 1, timeout_s=30)
        await asyncio.sleep(2.0)  # anything re-read from the earliest offset would be normalized by now
        assert hub.metrics.total("normalized") == 1, "only the message sent after the upgrade"
        assert hub.metrics.total("routed_events") == 1, "routed once: its care.events copy is not routed again"
        assert hub.metrics.get("normalized", kind="discharge") == 0
        assert not any("Okafor" in str(r.bundle) or "RGH0005" in str(r.bundle) for r in pcp.received)
        own = await committed_offsets(broker, f"{app_id}-route", list(ends))
        assert sum(own.values()) == 3, "the old group's start was taken as the stage's own, then moved on by one"
    finally:
        await hub.stop()
