"""A stream worker restarted against a broker holding its state gets that state back.

Each stateful component is checked after a restart of the hub (same topics,
same consumer group, a fresh process state): the per-patient signals table
(a readmission is recognised across the restart), the visits-seen table (the
same admission resent after the restart is not routed again) and the consents
on file (a consent posted before the restart still permits disclosure).
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from carehub.connectors.mllp import MLLPClient, ack_code
from carehub.core.settings import Settings
from carehub.demo_receivers import DemoRecipient
from carehub.hub import Hub
from tests.authkit import CONSENT_ADMIN, TEST_ISSUER, Issuer
from tests.conftest import FEED, REPO
from tests.integration.conftest import eventually, hub_settings

pytestmark = pytest.mark.integration
ADMIT = (FEED / "05-a01-admit-okafor.hl7").read_bytes()
DISCHARGE = (FEED / "07-a03-discharge-okafor.hl7").read_bytes()
PART2_ADMIT = (FEED / "09-a01-admit-recovery-center-part2.hl7").read_bytes()
CONSENT = json.loads((REPO / "demo" / "consents" / "harper-part2-consent.json").read_text())


def _readmission() -> bytes:
    """Okafor again, a new visit a week after the discharge."""
    return ADMIT.replace(b"RGH0005", b"RGH0099").replace(b"20261103", b"20261110").replace(b"V77002", b"V77099")


def _resent(message: bytes, control_id: bytes, new_id: bytes) -> bytes:
    return message.replace(control_id, new_id)


async def _send(hub: Hub, *messages: bytes) -> None:
    client = MLLPClient("127.0.0.1", hub.mllp_port)
    try:
        for message in messages:
            assert ack_code(await client.send(message)) == "AA"
    finally:
        await client.close()


def _metric(hub: Hub, name: str, **labels: str) -> int:
    return hub.metrics.get(name, **labels)


async def _restarted(settings: Settings, running: Hub) -> Hub:
    await running.stop()
    again = Hub(settings)
    await again.start()
    return again


def _post_consent(hub: Hub, consent: dict[str, Any]) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{hub.http_port}/fhir/Consent",
        data=json.dumps(consent).encode(),
        method="POST",
        headers={"Content-Type": "application/fhir+json", **TEST_ISSUER.headers(*CONSENT_ADMIN)},
    )
    with urllib.request.urlopen(request, timeout=20) as response:
        return int(response.status)


async def test_signals_visits_seen_and_consents_survive_a_restart(
    broker: str, config_dir: Path, recipients: dict[str, DemoRecipient], issuer: Issuer
) -> None:
    settings = hub_settings(config_dir, broker)
    pcp = recipients["pcp-riverside"]
    hub = Hub(settings)
    await hub.start()
    try:
        await _send(hub, ADMIT, DISCHARGE)
        await eventually(lambda: len(pcp.received) >= 4, timeout_s=60)
        assert await asyncio.to_thread(_post_consent, hub, CONSENT) == 201

        hub = await _restarted(settings, hub)

        before = len(pcp.received)
        await _send(hub, _resent(ADMIT, b"|RGH0005|", b"|RGH0005R|"), _readmission())
        await eventually(lambda: _metric(hub, "signal", flag="readmission") >= 1, timeout_s=60)
        assert _metric(hub, "duplicates_suppressed", kind="admit") == 1, "visits-seen came back"
        await eventually(lambda: len(pcp.received) >= before + 1, timeout_s=30)
        await asyncio.sleep(0.5)
        admits = [r for r in pcp.received[before:] if r.event_code == "notification-admit"]
        assert len(admits) == 1, "only the new visit is announced; the resent one was routed before the restart"

        await _send(hub, PART2_ADMIT)
        await eventually(lambda: any("RRC-20931" in json.dumps(r.bundle) for r in pcp.received), timeout_s=30)
    finally:
        await hub.stop()
