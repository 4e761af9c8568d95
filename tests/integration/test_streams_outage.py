"""A stream worker survives a broker outage: it reconnects by itself when the broker returns."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from carehub.broker import EmbeddedBroker
from carehub.connectors.mllp import MLLPClient, ack_code
from carehub.demo_receivers import DemoRecipient
from carehub.hub import Hub
from tests.conftest import FEED
from tests.integration.conftest import eventually, hub_settings
from tests.integration.test_shutdown import _streams_worker

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def _aa(hub: Hub, payload: bytes, timeout_s: float = 60) -> None:
    """Send until AA (AR 207 while the ingest side has not seen the broker back yet)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        client = MLLPClient("127.0.0.1", hub.mllp_port, timeout_s=10)
        try:
            if ack_code(await client.send(payload)) == "AA":
                return
        finally:
            await client.close()
        assert asyncio.get_running_loop().time() < deadline, "no AA after the broker came back"
        await asyncio.sleep(0.5)


async def test_a_stream_worker_reconnects_when_the_broker_returns(
    tmp_path: Path, config_dir: Path, recipients: dict[str, DemoRecipient]
) -> None:
    own = EmbeddedBroker(log_file=tmp_path / "broker.log")
    await asyncio.to_thread(own.start)
    settings = hub_settings(config_dir, own.bootstrap)
    ingest = Hub(settings, roles=("ingest",))
    await ingest.start()
    log = tmp_path / "streams.log"
    worker = await _streams_worker(config_dir, own.bootstrap, settings.kafka.topic_prefix, log)
    pcp = recipients["pcp-riverside"]
    again: EmbeddedBroker | None = None
    try:
        await _aa(ingest, (FEED / "02-a01-admit-rivera.hl7").read_bytes())
        await eventually(lambda: len(pcp.received) == 1, timeout_s=60)
        await asyncio.to_thread(own.stop)
        await asyncio.sleep(8)  # the worker's fetches and heartbeats fail meanwhile
        again = EmbeddedBroker(port=own.port, log_file=tmp_path / "broker2.log")
        await asyncio.to_thread(again.start)
        await _aa(ingest, (FEED / "05-a01-admit-okafor.hl7").read_bytes())
        await eventually(lambda: len(pcp.received) == 2, timeout_s=120)
        assert worker.returncode is None, "the same worker process, reconnected"
        lines = log.read_text().splitlines()
        print(f"streams worker: {len(lines)} log lines over the outage and recovery")
    finally:
        if worker.returncode is None:
            worker.send_signal(signal.SIGTERM)
            await asyncio.wait_for(worker.wait(), 30)
        await ingest.stop()
        for broker in (own, again):
            if broker is not None:
                await asyncio.to_thread(broker.stop)
