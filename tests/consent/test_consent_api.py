"""Through a running hub: §2.31 consent elements, consent versions with who wrote them, and the
§2.51 emergency exception only by an authenticated, audited attestation (never from PV1-2)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from carehub.connectors.mllp import MLLPClient, ack_code
from carehub.core.principal import CONSENT_READ, PART2_ATTEST
from carehub.demo_receivers import DemoRecipient
from carehub.hub import Hub
from carehub.streams.consent.notice import NOTICE_EXTENSION
from tests.authkit import CONSENT_ADMIN, TEST_ISSUER
from tests.conftest import FEED, REPO
from tests.integration.conftest import eventually

pytestmark = pytest.mark.integration
CONSENT = json.loads((REPO / "demo" / "consents" / "harper-part2-consent.json").read_text())
ADMIT = (FEED / "09-a01-admit-recovery-center-part2.hl7").read_bytes()
#: The program's admit through its emergency department: PV1-2 = E.
ED_ADMIT = ADMIT.replace(b"PV1|1|I|", b"PV1|1|E|").replace(b"|RRC-4412|", b"|RRC-ED1|")
CAREHUB = str(Path(sys.executable).parent / "carehub")


def _call(hub: Hub, method: str, path: str, body: Any = None, scopes: tuple[str, ...] = CONSENT_ADMIN,
          headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any], dict[str, str]]:  # fmt: skip
    data = json.dumps(body).encode() if body is not None else None
    auth = TEST_ISSUER.headers(*scopes) if scopes else {}
    request = urllib.request.Request(
        f"http://127.0.0.1:{hub.http_port}{path}", data=data, method=method,
        headers={"Content-Type": "application/fhir+json", **auth, **(headers or {})},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.load(response), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc), dict(exc.headers)


async def test_a_deficient_consent_is_refused_naming_every_missing_element(hub: Hub) -> None:
    gutted = {k: v for k, v in CONSENT.items() if k not in ("dateTime", "organization", "sourceAttachment")}
    gutted["provision"] = {k: v for k, v in CONSENT["provision"].items() if k not in ("purpose", "action")}
    gutted["provision"]["period"] = {"start": "2026-11-01"}
    status, body, _ = await asyncio.to_thread(_call, hub, "POST", "/fhir/Consent", gutted)
    assert status == 422 and body["resourceType"] == "OperationOutcome"
    named = {issue["expression"][0] for issue in body["issue"]}
    assert named == {
        "Consent.dateTime", "Consent.organization", "Consent.sourceAttachment", "Consent.provision.purpose",
        "Consent.provision.action", "Consent.provision.period.end",
    }, body  # fmt: skip
    assert all(issue["code"] == "required" for issue in body["issue"])
    status, _, _ = await asyncio.to_thread(_call, hub, "GET", "/fhir/Consent/harper-rrc-2026")
    assert status == 404, "nothing was stored"
    # "end of treatment" instead of a date is an expiry
    eot = {
        **CONSENT,
        "id": "eot",
        "extension": [
            {"url": "urn:carehub:fhir:StructureDefinition:consent-expires-on", "valueString": "end of treatment"}
        ],
    }
    eot["provision"] = {**CONSENT["provision"], "period": {"start": "2026-11-01"}}  # fmt: skip
    status, body, _ = await asyncio.to_thread(_call, hub, "POST", "/fhir/Consent", eot)
    assert status == 201, body


async def test_every_consent_version_is_kept_with_who_wrote_it(hub: Hub) -> None:
    status, first, headers = await asyncio.to_thread(_call, hub, "POST", "/fhir/Consent", CONSENT)
    assert status == 201 and first["meta"]["versionId"] == "1" and headers["ETag"] == 'W/"1"'
    revoked = {**CONSENT, "status": "inactive"}
    status, _, _ = await asyncio.to_thread(_call, hub, "PUT", "/fhir/Consent/harper-rrc-2026", revoked,
                                           headers={"If-Match": 'W/"7"'})  # fmt: skip
    assert status == 412, "a write over a version the writer has not seen is refused"
    status, second, _ = await asyncio.to_thread(_call, hub, "PUT", "/fhir/Consent/harper-rrc-2026", revoked,
                                                headers={"If-Match": 'W/"1"'})  # fmt: skip
    assert status == 201 and second["meta"]["versionId"] == "2"
    status, history, _ = await asyncio.to_thread(_call, hub, "GET", "/fhir/Consent/harper-rrc-2026/_history",
                                                 scopes=(CONSENT_READ,))  # fmt: skip
    assert status == 200 and history["type"] == "history"
    versions = [(e["resource"]["meta"]["versionId"], e["resource"]["status"]) for e in history["entry"]]
    assert versions == [("2", "inactive"), ("1", "active")]
    authors = {ext["valueString"] for e in history["entry"] for ext in e["resource"]["meta"]["extension"]}
    assert len(authors) == 1 and next(iter(authors)).startswith("token:"), authors  # the principal, not a header

    token = TEST_ISSUER.token(*CONSENT_ADMIN)
    out = await asyncio.to_thread(
        subprocess.run,
        [CAREHUB, "consent", "history", "harper-rrc-2026", "--hub", f"http://127.0.0.1:{hub.http_port}"],
        capture_output=True, text=True, env={**os.environ, "CAREHUB_TOKEN": token}, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "version 2" in lines[0] and "inactive" in lines[0] and "written by token:" in lines[0], lines


def _mine(recipient: DemoRecipient) -> list[Any]:
    return [r for r in recipient.received if "RRC-20931" in json.dumps(r.bundle)]


async def _send(hub: Hub, payload: bytes) -> None:
    client = MLLPClient("127.0.0.1", hub.mllp_port)
    assert ack_code(await client.send(payload)) == "AA"
    await client.close()


async def test_the_emergency_exception_needs_an_attestation_never_pv1_2(
    hub: Hub, recipients: dict[str, DemoRecipient]
) -> None:
    pcp = recipients["pcp-riverside"]
    await _send(hub, ED_ADMIT)
    await eventually(lambda: hub.metrics.total("consent") >= 2)
    await asyncio.sleep(1.0)
    assert _mine(pcp) == [], "PV1-2 = E no longer discloses Part 2 data without consent"

    window = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"}
    attestation = {"id": "ed-1", "patient": "RRC|RRC-20931", "recipient": "pcp-riverside",
                   "attested_by": "Dr. A. Rivera, ED attending",
                   "reason": "unresponsive, suspected overdose"}  # fmt: skip
    status, _, _ = await asyncio.to_thread(_call, hub, "POST", "/admin/part2/emergency", attestation, scopes=())
    assert status == 401
    status, _, _ = await asyncio.to_thread(_call, hub, "POST", "/admin/part2/emergency", {**attestation, **window})
    assert status == 403, "a consent administrator is not a clinician attesting an emergency"
    partial = {"id": "x", "patient": "RRC|RRC-20931"}
    status, body, _ = await asyncio.to_thread(_call, hub, "POST", "/admin/part2/emergency", partial,
                                              scopes=(PART2_ATTEST,))  # fmt: skip
    assert status == 422 and "attested_by" in body["issue"][0]["details"]["text"]
    assert "recipient" in body["issue"][0]["details"]["text"] and "reason" in body["issue"][0]["details"]["text"]

    # through the CLI, with a clinician's token, for the next 24 hours
    out = await asyncio.to_thread(
        subprocess.run,
        [CAREHUB, "part2", "emergency", "--id", "ed-1", "--patient", "RRC|RRC-20931", "--recipient", "pcp-riverside",
         "--by", attestation["attested_by"], "--reason", attestation["reason"],
         "--hub", f"http://127.0.0.1:{hub.http_port}"],
        capture_output=True, text=True, env={**os.environ, "CAREHUB_TOKEN": TEST_ISSUER.token(PART2_ATTEST)},
        timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "ed-1 stored" in out.stdout

    await _send(hub, ED_ADMIT.replace(b"|RRC-ED1|", b"|RRC-ED2|").replace(b"RV-3301", b"RV-3302"))
    await eventually(lambda: len(_mine(pcp)) == 1)
    header = _mine(pcp)[0].bundle["entry"][0]["resource"]
    notices = [e["valueString"] for e in header.get("extension", []) if e["url"] != NOTICE_EXTENSION]
    assert any("2.51" in text for text in notices), notices
    await asyncio.sleep(1.0)
    assert [r for r in recipients["payer-acme"].received if "RRC-20931" in json.dumps(r.bundle)] == [], (
        "the attestation names the PCP only"
    )

    await eventually(lambda: hub.metrics.total("audited") >= hub.metrics.total("consent"))
    out = subprocess.run(
        [CAREHUB, "audit", "disclosures", "--patient", "RRC|RRC-20931", "--json",
         "--database-url", hub.settings.database_url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rows = [json.loads(line) for line in out.splitlines()]
    attested = [r for r in rows if r["phase"] == "attest"]
    assert len(attested) == 1 and attested[0]["recipient_id"] == "pcp-riverside"
    assert attested[0]["reason"] == attestation["reason"]
    sent = [r for r in rows if r["phase"] == "send" and r["outcome"] == "permit"]
    assert sent and all(r["rule"] == "send-time:emergency-2.51" and "ed-1" in r["reason"] for r in sent), sent
