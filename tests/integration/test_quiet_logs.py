"""A healthy hub that goes idle after traffic logs no errors (Faust's stalled-stream blocks included).

The stall check is shortened to 3 s so that "idle for a bit" is long enough for Faust to look at
every partition several times; the table changelogs must not count as unprocessed stream topics.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from carehub.connectors.mllp import MLLPClient, ack_code
from carehub.demo_receivers import DemoRecipient
from carehub.hub import Hub
from tests.conftest import FEED
from tests.integration.conftest import eventually, hub_settings

pytestmark = pytest.mark.integration


async def test_an_idle_hub_after_traffic_logs_no_errors(
    broker: str, config_dir: Path, recipients: dict[str, DemoRecipient], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    hub = Hub(hub_settings(config_dir, broker, stall_report_s=3.0))
    await hub.start()
    try:
        client = MLLPClient("127.0.0.1", hub.mllp_port)
        for path in sorted(FEED.glob("*.hl7")):
            assert ack_code(await client.send(path.read_bytes())) == "AA"
        await client.close()
        await eventually(lambda: len(recipients["pcp-riverside"].received) >= 5, timeout_s=30)
        caplog.clear()
        await asyncio.sleep(12)  # idle: Faust checks every partition every 2.5 s against the 3 s limit
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert errors == [], [r.getMessage()[:200] for r in errors[:3]]
    finally:
        await hub.stop()
