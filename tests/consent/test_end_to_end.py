"""Part 2 through a running hub: no consent, no disclosure; consent posted, next event
delivered with the notice; revoked, it stops. Every decision is audited."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from carehub.connectors.mllp import MLLPClient, ack_code
from carehub.demo_receivers import DemoRecipient
from carehub.hub import Hub
from carehub.streams.consent.notice import NOTICE, NOTICE_EXTENSION
from tests.authkit import CONSENT_ADMIN, TEST_ISSUER
from tests.conftest import FEED, REPO
from tests.integration.conftest import ON_EACH_JOURNAL, eventually

pytestmark = pytest.mark.integration
ADMIT = (FEED / "09-a01-admit-recovery-center-part2.hl7").read_bytes()
CONSENT = json.loads((REPO / "demo" / "consents" / "harper-part2-consent.json").read_text())
PATIENT = "RRC|RRC-20931"


def _transfer() -> bytes:
    return ADMIT.replace(b"ADT^A01^ADT_A01|RRC-4412", b"ADT^A02^ADT_A02|RRC-T1").replace(b"EVN|A01|", b"EVN|A02|")


def _discharge() -> bytes:
    return (
        ADMIT.replace(b"ADT^A01^ADT_A01|RRC-4412", b"ADT^A03^ADT_A03|RRC-D1")
        .replace(b"EVN|A01|", b"EVN|A03|")
        .replace(b"|20261108084500-0500\r", b"|20261108084500-0500|20261112100000-0500\r")
    )


def _http(method: str, url: str, body: dict[str, Any] | bytes | None = None) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/fhir+json", **TEST_ISSUER.headers(*CONSENT_ADMIN)}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


async def _send(hub: Hub, payload: bytes) -> None:
    client = MLLPClient("127.0.0.1", hub.mllp_port)
    assert ack_code(await client.send(payload)) == "AA"
    await client.close()


def _decisions(hub: Hub) -> int:
    return hub.metrics.total("consent")


def _mine(recipient: DemoRecipient) -> list[Any]:
    return [r for r in recipient.received if "RRC-20931" in json.dumps(r.bundle)]


@ON_EACH_JOURNAL
async def test_part2_admit_is_suppressed_until_consent_then_stops_on_revocation(
    hub: Hub, recipients: dict[str, DemoRecipient]
) -> None:
    pcp, payer = recipients["pcp-riverside"], recipients["payer-acme"]
    base = f"http://127.0.0.1:{hub.http_port}/fhir"

    await _send(hub, ADMIT)
    await eventually(lambda: _decisions(hub) >= 2)
    await asyncio.sleep(0.5)
    assert _mine(pcp) == [] and _mine(payer) == [], "Part 2 data without consent must not be disclosed"

    status, stored = await asyncio.to_thread(_http, "POST", f"{base}/Consent", CONSENT)
    assert status == 201 and stored["id"] == "harper-rrc-2026"
    before = _decisions(hub)
    await _send(hub, _transfer())
    await eventually(lambda: len(_mine(pcp)) == 1)
    await eventually(lambda: _decisions(hub) >= before + 1)  # transfers go to the PCP only
    header = _mine(pcp)[0].bundle["entry"][0]["resource"]
    notices = {e["url"]: e["valueString"] for e in header.get("extension", [])}
    assert notices[NOTICE_EXTENSION] == NOTICE
    assert any("harper-rrc-2026" in text for text in notices.values()), "the consent's scope travels with the data"
    assert _mine(payer) == [], "the consent names the PCP only"

    revoked = {**CONSENT, "status": "inactive"}
    status, _ = await asyncio.to_thread(_http, "PUT", f"{base}/Consent/harper-rrc-2026", revoked)
    assert status == 201
    before = _decisions(hub)
    await _send(hub, _discharge())
    await eventually(lambda: _decisions(hub) >= before + 2)
    await asyncio.sleep(0.5)
    assert len(_mine(pcp)) == 1, "a revocation stops the very next event"

    await eventually(lambda: hub.metrics.total("audited") >= _decisions(hub))
    carehub = Path(sys.executable).parent / "carehub"
    out = subprocess.run(
        [str(carehub), "audit", "disclosures", "--patient", PATIENT, "--json",
         "--database-url", hub.settings.database_url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rows = [json.loads(line) for line in out.splitlines()]
    notifications = [r for r in rows if r["recipient_id"] == "pcp-riverside" and r["action"] == "notify"]
    assert [(r["phase"], r["outcome"], r["delivery"]) for r in notifications] == [
        ("plan", "deny", "not sent"),
        ("plan", "permit", "delivered"),
        ("send", "permit", "delivered"),  # decided again, and journaled, just before it left
        ("plan", "deny", "not sent"),
    ]
    assert {r["consent_id"] for r in rows if r["outcome"] == "permit"} == {"harper-rrc-2026"}
    assert any(r["action"] == "task" and r["outcome"] == "deny" for r in rows), "follow-up tasks are gated too"
    tcm = {r["delivery_id"] for r in rows if r["action"] == "task" and r["recipient_id"] == "pcp-riverside"}
    assert len(tcm) == 2, "the two TCM tasks of the discharge are two deliveries, two audit rows"
    assert all(r["reason"] for r in rows)


async def test_bad_consents_get_an_operation_outcome(hub: Hub) -> None:
    base = f"http://127.0.0.1:{hub.http_port}/fhir"
    status, body = await asyncio.to_thread(_http, "POST", f"{base}/Consent", b"{not json")
    assert status == 400 and body["resourceType"] == "OperationOutcome"
    status, body = await asyncio.to_thread(_http, "POST", f"{base}/Consent", {"resourceType": "Patient"})
    assert status == 422 and body["issue"][0]["code"] == "invalid"
    no_provision = {k: v for k, v in CONSENT.items() if k != "provision"}
    status, body = await asyncio.to_thread(_http, "POST", f"{base}/Consent", no_provision)
    assert status == 422 and "provision" in body["issue"][0]["details"]["text"]
    bad_status = {**CONSENT, "status": "signed"}
    status, body = await asyncio.to_thread(_http, "POST", f"{base}/Consent", bad_status)
    assert status == 422
    status, body = await asyncio.to_thread(_http, "GET", f"{base}/Consent/nope")
    assert status == 404
