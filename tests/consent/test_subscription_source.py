"""Consents announced by a FHIR source through a subscription join the consent table."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import pytest

from carehub.commands import subscribe
from carehub.hub import Hub
from tests.conftest import REPO
from tests.integration.conftest import eventually, hub_settings
from tests.subscriptions.conftest import SECRET, SOURCE_TOKEN
from tests.subscriptions.source_server import SourceServer

pytestmark = pytest.mark.integration
CONSENT = json.loads((REPO / "demo" / "consents" / "harper-part2-consent.json").read_text())

CONFIG = f"""
sources:
  - name: consents-ehr
    base_url: {{base}}
    facility: RRC
    auth: {{{{type: bearer, token: {SOURCE_TOKEN}}}}}
    subscriptions:
      - name: consents
        topic: http://example.org/SubscriptionTopic/consent-change
        endpoint: ${{{{CAREHUB_PUBLIC_URL:-http://127.0.0.1:1}}}}/fhir/notify/consents-ehr/consents
        secret: {SECRET}
        heartbeat_period_s: 600
        payload: id-only
"""


@pytest.fixture
async def source() -> SourceServer:
    server = SourceServer(token=SOURCE_TOKEN)
    await server.start()
    yield server  # type: ignore[misc]
    await server.stop()


async def test_a_consent_from_a_subscription_source_takes_effect(
    broker: str, config_dir: Path, source: SourceServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    (config_dir / "subscriptions.yaml").write_text(CONFIG.format(base=source.base_url))
    hub = Hub(hub_settings(config_dir, broker))
    await hub.start()
    try:
        monkeypatch.setenv("CAREHUB_PUBLIC_URL", f"http://127.0.0.1:{hub.http_port}")
        args = argparse.Namespace(source="consents-ehr", config_dir=config_dir)
        assert await asyncio.to_thread(subscribe.run, args) == 0
        sub_id = next(iter(source.subscriptions))
        source.put(CONSENT)
        assert await source.event(sub_id, "Consent/harper-rrc-2026") == 200
        await eventually(lambda: hub.consents.read("harper-rrc-2026") is not None)
        assert [c["id"] for c in hub.consents.search("RRC|RRC-20931")] == ["harper-rrc-2026"]
        assert "GET /fhir/Consent/harper-rrc-2026" in source.requests, "id-only: read from the source"
        source.put({**CONSENT, "status": "inactive"})  # the source revokes it: a second version, not an overwrite
        assert await source.event(sub_id, "Consent/harper-rrc-2026") == 200
        await eventually(lambda: len(hub.consents.history("harper-rrc-2026")) == 2)
        history = hub.consents.history("harper-rrc-2026")
        assert [(c["status"], c["meta"]["versionId"]) for c in history] == [("inactive", "2"), ("active", "1")]
        assert {e["valueString"] for c in history for e in c["meta"]["extension"]} == {"source:consents-ehr"}

        source.put({**CONSENT, "id": "broken", "status": "signed"})
        assert await source.event(sub_id, "Consent/broken") == 200
        await eventually(lambda: hub.metrics.get("stage_failed", stage="fhir-map") >= 1)
        assert hub.consents.read("broken") is None, "an unusable consent is dead-lettered, not applied"
    finally:
        await hub.stop()
