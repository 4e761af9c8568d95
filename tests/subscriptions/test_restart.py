"""A hub restarted against a broker holding its subscription state picks up where it stopped.

Event 1 is received before the restart. After it, event 2 must be taken as the
next event: no gap, no ``$events`` recovery, one discharge. A worker that lost
the ``subscriptions.state`` / ``fhir.encounters`` tables would see event 2 as
a gap after event 0 and recover.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from carehub.broker import free_port
from carehub.commands import subscribe
from carehub.demo_receivers import DemoRecipient
from carehub.fhir_subscriptions import read_states
from carehub.hub import Hub
from tests.integration.conftest import eventually, hub_settings
from tests.subscriptions.conftest import subscriptions_yaml
from tests.subscriptions.fixtures import encounter
from tests.subscriptions.source_server import SourceServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_subscription_state_survives_a_restart(
    broker: str,
    config_dir: Path,
    recipients: dict[str, DemoRecipient],
    source: SourceServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (config_dir / "subscriptions.yaml").write_text(subscriptions_yaml(source.base_url))
    settings = hub_settings(config_dir, broker)
    settings = replace(settings, http=replace(settings.http, port=free_port()))  # the endpoint stays the same
    monkeypatch.setenv("CAREHUB_PUBLIC_URL", f"http://127.0.0.1:{settings.http.port}")
    pcp = recipients["pcp-riverside"]
    hub = Hub(settings)
    await hub.start()
    try:
        args = argparse.Namespace(source="ehr", config_dir=config_dir)
        assert await asyncio.to_thread(subscribe.run, args) == 0
        sub_id = next(iter(source.subscriptions))
        source.put(encounter(status="in-progress"))
        assert await source.event(sub_id, "Encounter/e-1") == 200
        await eventually(lambda: [r.event_code for r in pcp.received] == ["notification-admit"], timeout_s=30)

        await hub.stop()
        hub = Hub(settings)
        await hub.start()

        source.put(encounter(status="finished"))
        assert await source.event(sub_id, "Encounter/e-1") == 200
        await eventually(lambda: len(pcp.received) >= 2, timeout_s=60)
        await asyncio.sleep(0.5)
        notifications = [r.event_code for r in pcp.received if r.event_code.startswith("notification")]
        assert notifications == ["notification-admit", "notification-discharge"]
        states = await read_states(broker, hub.topics.subscription_state)
        ehr = states["ehr|encounters"]
        assert (ehr.last_event_number, ehr.missing, ehr.recovered) == (2, (), 0)
        assert not any("$events" in r for r in source.requests), "event 2 followed event 1: nothing to recover"
    finally:
        await hub.stop()
