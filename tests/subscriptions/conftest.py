"""A running FHIR source server (real HTTP) and a hub config that subscribes to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import CORPUS
from tests.integration.conftest import config_dir, recipients  # noqa: F401  (fixtures)
from tests.subscriptions.fixtures import encounter, patient, supporting
from tests.subscriptions.source_server import SourceServer

SOURCE_TOKEN = "source-bearer-token-0001"
SECRET = "subscription-secret-0001"
BACKPORT = CORPUS / "fhir" / "subscriptions" / "r4-backport"


def subscriptions_yaml(base_url: str, *, grace: float = 1.0, interval: float = 0.5) -> str:
    return f"""
heartbeat_grace: {grace}
check_interval_s: {interval}
sources:
  - name: ehr
    base_url: {base_url}
    facility: RGH
    supports_events: true
    auth: {{type: bearer, token: {SOURCE_TOKEN}}}
    subscriptions:
      - name: encounters
        topic: http://hl7.org/SubscriptionTopic/admission
        filter: ["Encounter?status=in-progress,finished"]
        endpoint: ${{CAREHUB_PUBLIC_URL:-http://127.0.0.1:1}}/fhir/notify/ehr/encounters
        header: X-Carehub-Subscription-Secret
        secret: {SECRET}
        heartbeat_period_s: 60
        payload: id-only
  - name: quiet
    base_url: {base_url}
    facility: RGH
    supports_events: false
    auth: {{type: bearer, token: {SOURCE_TOKEN}}}
    subscriptions:
      - name: starts
        topic: http://hl7.org/SubscriptionTopic/admission
        endpoint: ${{CAREHUB_PUBLIC_URL:-http://127.0.0.1:1}}/fhir/notify/quiet/starts
        secret: {SECRET}
        heartbeat_period_s: 1
        payload: empty
"""


@pytest.fixture
async def source() -> AsyncIterator[SourceServer]:
    server = SourceServer(token=SOURCE_TOKEN)
    await server.start()
    for resource in [patient(), *supporting(), encounter(status="planned")]:
        server.put(resource)
    yield server
    await server.stop()


@pytest.fixture
def backport() -> Path:
    if not BACKPORT.is_dir():
        pytest.fail(f"the shared corpus is missing at {BACKPORT}")
    return BACKPORT
