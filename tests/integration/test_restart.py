"""A stream worker restarted against a broker holding its state gets that state back.

Each stateful component is checked after a restart of the hub (same topics,
same consumer groups, a fresh process state): the per-patient signals table
(a readmission is recognised across the restart), the visits-seen table (the
same admission resent after the restart is not routed again), the consents
on file (a consent posted before the restart still permits disclosure), the
retry tiers (a delivery waiting on a retry topic when the hub stopped gets its
next attempt after the restart, numbered on from the attempts before it) and
the audit stage (it goes on from its committed offsets: the AuditEvents it
stores after the restart are the new ones, none read again). The FHIR inbound
tables are restarted in tests/subscriptions/test_restart.py.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from carehub.demo_receivers import DemoRecipient
from carehub.hub import Hub
from carehub.journal import open_journal
from tests.authkit import CONSENT_ADMIN, TEST_ISSUER, Issuer
from tests.conftest import FEED, REPO
from tests.integration.conftest import eventually, hub_settings, send_accepted

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ADMIT = (FEED / "05-a01-admit-okafor.hl7").read_bytes()
DISCHARGE = (FEED / "07-a03-discharge-okafor.hl7").read_bytes()
PART2_ADMIT = (FEED / "09-a01-admit-recovery-center-part2.hl7").read_bytes()
CONSENT = json.loads((REPO / "demo" / "consents" / "harper-part2-consent.json").read_text())


def _readmission() -> bytes:
    """Okafor again, a new visit a week after the discharge."""
    return ADMIT.replace(b"RGH0005", b"RGH0099").replace(b"20261103", b"20261110").replace(b"V77002", b"V77099")


def _resent(message: bytes, control_id: bytes, new_id: bytes) -> bytes:
    return message.replace(control_id, new_id)


def _metric(hub: Hub, name: str, **labels: str) -> int:
    return hub.metrics.get(name, **labels)


def _attempts_waiting(url: str) -> dict[str, int]:
    """Deliveries tried but not finished (on a retry topic): delivery id -> the highest attempt so far."""
    journal = open_journal(url)
    try:
        rows = journal.db.query(
            "SELECT delivery_id, MAX(attempt) FROM delivery_attempts"
            " WHERE delivery_id NOT IN (SELECT delivery_id FROM delivery_outcomes) GROUP BY delivery_id"
        )
        return {str(delivery): int(attempt) for delivery, attempt in rows}
    finally:
        journal.close()


def _audit_rows(url: str) -> int:
    journal = open_journal(url)
    try:
        return int(journal.db.query("SELECT COUNT(*) FROM audit_events")[0][0])
    finally:
        journal.close()


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
    # the pharmacy and the food bank are not running: their deliveries wait on the retry topics, seconds apart
    settings = replace(settings, delivery=replace(settings.delivery, backoff_initial_s=5.0))
    pcp = recipients["pcp-riverside"]
    hub = Hub(settings)
    await hub.start()
    try:
        await send_accepted(hub, ADMIT, DISCHARGE)
        await eventually(lambda: len(pcp.received) >= 4, timeout_s=60)
        assert await asyncio.to_thread(_post_consent, hub, CONSENT) == 201

        await hub.stop()
        waiting = await asyncio.to_thread(_attempts_waiting, settings.database_url)
        assert waiting, "deliveries to the recipients that are down wait on a retry topic"
        audited_before = await asyncio.to_thread(_audit_rows, settings.database_url)
        hub = Hub(settings)
        await hub.start()

        before = len(pcp.received)
        await send_accepted(hub, _resent(ADMIT, b"|RGH0005|", b"|RGH0005R|"), _readmission())
        await eventually(lambda: _metric(hub, "signal", flag="readmission") >= 1, timeout_s=60)
        assert _metric(hub, "duplicates_suppressed", kind="admit") == 1, "visits-seen came back"
        await eventually(lambda: len(pcp.received) >= before + 1, timeout_s=30)
        await asyncio.sleep(0.5)
        admits = [r for r in pcp.received[before:] if r.event_code == "notification-admit"]
        assert len(admits) == 1, "only the new visit is announced; the resent one was routed before the restart"

        await send_accepted(hub, PART2_ADMIT)
        await eventually(lambda: any("RRC-20931" in json.dumps(r.bundle) for r in pcp.received), timeout_s=30)

        async def retried_on() -> bool:
            now = await asyncio.to_thread(_attempts_waiting, settings.database_url)
            return any(now.get(delivery, 0) > attempts for delivery, attempts in waiting.items())

        for _ in range(120):  # the retry tiers took over the records waiting when the hub stopped
            if await retried_on():
                break
            await asyncio.sleep(0.5)
        else:
            raise AssertionError(f"no delivery of {sorted(waiting.items())} was tried again after the restart")

        async def audited_since() -> int:
            return await asyncio.to_thread(_audit_rows, settings.database_url) - audited_before

        for _ in range(60):
            if await audited_since() > 0 and await audited_since() == hub.metrics.total("audited"):
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.0)
        assert await audited_since() == hub.metrics.total("audited") > 0, "the audit stage read only new events"
    finally:
        await hub.stop()
