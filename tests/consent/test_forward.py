"""HL7v2 forward of Part 2 data, at the boundary: the bytes a real MLLP recipient received.

The partner EHR is a health plan's (kind payer), so without consent policy lets it have a redacted
disclosure: it must receive an HL7 message written from the redacted event — demographics and the
fact of an encounter — and none of the sender's bytes. Under a consent naming it, it receives the
sender's message with the §2.32 notice as an NTE. From a program that is itself the sender nothing
can be redacted, so nothing is forwarded and the refusal is audited.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import hl7
import pytest

from carehub.connectors.mllp import MLLPClient, ack_code
from carehub.hub import Hub
from carehub.streams.consent.notice import NOTICE
from tests.authkit import CONSENT_ADMIN, TEST_ISSUER, Issuer
from tests.conftest import FEED
from tests.consent.consents import consent
from tests.consent.egress_kit import MllpSink, markers
from tests.integration.conftest import eventually, hub_settings

pytestmark = pytest.mark.integration
RRC_ADMIT = (FEED / "09-a01-admit-recovery-center-part2.hl7").read_bytes()
ATTENDING = "4455667788^FOREMAN^ERIC^^^DR^^^NPI&2.16.840.1.113883.4.6&ISO^^^^NPI"
#: Everything in the sender's message that reveals SUD treatment, the program or the visit.
SECRETS = re.compile(rb"4W-SUD|F11|DG1|OBX|PV2|NTE|(?i:detox)|(?i:opioid)|FOREMAN|4455667788|V-SECRET|RGH0|ADDICTION")


def program_admit(mrn: str, visit: str) -> bytes:
    pv1 = ["PV1", "1", "I", "4W-SUD^401^A^RGH^^^^ADDICTION", "", "", "", ATTENDING, "", "", "ADM"]
    pv1 += [""] * (19 - len(pv1)) + [f"{visit}^^^RGH^VN"]
    pv1 += [""] * (44 - len(pv1)) + ["20261108084500-0500"]
    segments = [
        f"MSH|^~\\&|EPICADT|RGH|CAREHUB|CAREHUB|20261108090000-0500||ADT^A01^ADT_A01|RGH0-{mrn}|P|2.5.1",
        "EVN|A01|20261108090000-0500",
        f"PID|1||{mrn}^^^RGH^MR||DOE^ALEX^Q||19800101|F|||1 MAIN ST^^SPRINGFIELD^IL^62701",
        "PD1|||RIVERSIDE FAMILY PRACTICE^^RFP|1234567893^WELBY^MARCUS^^^DR^^^NPI&2.16.840.1.113883.4.6&ISO^^^^NPI",
        "|".join(pv1),
        "PV2|||DETOX^Opioid withdrawal, detox admission^L",
        "OBX|1|CWE|11450-4^Problem list^LN||5602001^Opioid abuse^SCT||||||F",
        "DG1|1||F11.23^Opioid dependence with withdrawal^I10|Opioid dependence with withdrawal||A",
        "IN1|1|PPO^Acme PPO|PAYER-ACME^^^ACME^NIIP|ACME HEALTH PLAN",
    ]
    return ("\r".join(segments) + "\r").encode()


@pytest.fixture
async def partner() -> AsyncIterator[MllpSink]:
    sink = MllpSink()
    await sink.start()
    yield sink
    await sink.stop()


def _forward_config(config: Path, sink: MllpSink) -> None:
    (config / "recipients.yaml").write_text((config / "recipients.yaml").read_text() + f"""
  - id: ehr-forward
    name: Partner EHR of the health plan (HL7v2)
    kind: payer
    channel: mllp
    endpoint: {sink.url}
    formats: [hl7v2]
""")  # fmt: skip
    (config / "routes.yaml").write_text((config / "routes.yaml").read_text() + """  - id: forward-admits
    description: admissions are forwarded to the partner EHR
    when:
      kind: [admit]
    actions:
      - forward: ehr-forward
""")  # fmt: skip


async def _send(hub: Hub, *messages: bytes) -> None:
    client = MLLPClient("127.0.0.1", hub.mllp_port)
    for message in messages:
        assert ack_code(await client.send(message)) == "AA"
    await client.close()


def _post_consent(hub: Hub, body: dict[str, Any]) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{hub.http_port}/fhir/Consent", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/fhir+json", **TEST_ISSUER.headers(*CONSENT_ADMIN)},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=20) as response:
        return int(response.status)


def _forward_rows(hub: Hub, patient: str) -> list[dict[str, Any]]:
    carehub = Path(sys.executable).parent / "carehub"
    out = subprocess.run(
        [str(carehub), "audit", "disclosures", "--patient", patient, "--json",
         "--database-url", hub.settings.database_url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [row for line in out.splitlines() if (row := json.loads(line))["recipient_id"] == "ehr-forward"]


def _for(sink: MllpSink, mrn: str) -> list[bytes]:
    return [m for m in sink.received if mrn.encode() in m]


async def test_forwards_carry_the_redacted_event_or_the_whole_record_with_the_notice(
    broker: str, config_dir: Path, partner: MllpSink, issuer: Issuer
) -> None:
    _forward_config(config_dir, partner)
    hub = Hub(hub_settings(config_dir, broker))
    await hub.start()
    try:
        whole = consent("fwd", named=("ehr-forward",), patient=("urn:carehub:authority:RGH", "P2-FWD2"))
        assert await asyncio.to_thread(_post_consent, hub, whole) == 201
        await _send(hub, program_admit("P2-FWD1", "V-SECRET1"), program_admit("P2-FWD2", "V-SECRET2"), RRC_ADMIT)
        await eventually(lambda: _for(partner, "P2-FWD1") and _for(partner, "P2-FWD2"), timeout_s=60)
        await eventually(lambda: len(_forward_rows(hub, "RRC|RRC-20931")) >= 1, timeout_s=60)
        await asyncio.sleep(1.0)  # anything late would arrive now
        redacted_rows, whole_rows = _forward_rows(hub, "RGH|P2-FWD1"), _forward_rows(hub, "RGH|P2-FWD2")
        refused = _forward_rows(hub, "RRC|RRC-20931")
    finally:
        await hub.stop()

    [redacted] = _for(partner, "P2-FWD1")
    assert SECRETS.findall(redacted) == [] and markers(redacted) == [], redacted
    message = hl7.parse(redacted.decode())
    assert str(message.segment("PID")[5]) == "DOE^ALEX^Q" and str(message.segment("PID")[7]) == "19800101"
    assert str(message.segment("PV1")[2]) == "I" and str(message.segment("PV1")[44]).startswith("20261108")
    assert [str(s[0]) for s in message] == ["MSH", "EVN", "PID", "PV1"], "only allow-listed content"
    assert str(message.segment("MSH")[4]) == "CAREHUB", "the sending facility is not identified"
    assert {r["outcome"] for r in redacted_rows} == {"permit-redacted"}, "decided (and audited) as redacted"

    [full] = _for(partner, "P2-FWD2")
    assert b"4W-SUD" in full and b"F11.23" in full, "a full permit forwards the sender's record"
    nte = hl7.parse(full.decode()).segment("NTE")
    assert NOTICE in str(nte[3]) and "fwd" in str(nte[3]), "with the notice and the consent's scope"
    assert {(r["outcome"], r["consent_id"]) for r in whole_rows} == {("permit", "fwd")}

    assert _for(partner, "RRC-20931") == [], "a program's own record cannot be redacted: nothing forwarded"
    assert {r["outcome"] for r in refused} == {"deny"} and "redaction cannot help" in refused[0]["reason"]
