"""Issue 10's proof, at the boundary where data leaves: the bytes every recipient received and every
external topic an outsider could read.

A hub with a recipient on every channel (webhook PCP and payer, FHIR REST care manager, MLLP
forward, an HIE's Kafka topic), real peers for each, and Part 2 signals in every position:

(a) no consent: no marker of SUD treatment or of a Part 2 program in any body or external topic;
(b) a consent naming only the PCP: the PCP receives the admit with the §2.32 notice, nobody else
    receives Part 2 data;
(c) revoked after planning: a delivery waiting on a retry topic, one queued behind it and a
    dead-letter replay are all stopped at send time, audited as suppressed, nothing sent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from carehub.commands import subscribe
from carehub.connectors.mllp import MLLPClient, ack_code
from carehub.core.principal import OPS_READ, OPS_WRITE
from carehub.core.settings import Settings
from carehub.hub import Hub
from carehub.streams.consent.notice import NOTICE, NOTICE_EXTENSION
from tests.authkit import CONSENT_ADMIN, TEST_ISSUER, Issuer
from tests.consent.consents import consent
from tests.consent.egress_kit import HttpSink, MllpSink, external_topics, markers
from tests.integration.conftest import eventually, hub_settings
from tests.subscriptions.conftest import subscriptions_yaml
from tests.subscriptions.fixtures import encounter
from tests.subscriptions.source_server import SourceServer

pytestmark = pytest.mark.integration

#: Positions whose detection (issue 10 item 5, the p2detect workstream) is not on main yet. The test
#: still sends them and prints what leaked; remove an entry the moment its detection lands.
UNDETECTED_POSITIONS: frozenset[str] = frozenset()

MSH = ("MSH|^~\\&|EPICADT|RGH^2.16.840.1.113883.3.9999.1^ISO|CAREHUB|CAREHUB|{ts}||ADT^{ev}^{struct}|{ctl}|P|2.5.1"
       "|||AL|NE||UNICODE UTF-8")  # fmt: skip
PD1 = "PD1|||RIVERSIDE FAMILY PRACTICE^^RFP|1234567893^WELBY^MARCUS^^^DR^^^NPI&2.16.840.1.113883.4.6&ISO^^^^NPI"
IN1 = ("IN1|1|PPO^Acme PPO|PAYER-ACME^^^ACME^NIIP|ACME HEALTH PLAN|||||GRP-12||||20260101|20261231|||DOE^ALEX|SEL|"
       "19800101|||||||||||||||||||||||||||||||ACME000111222")  # fmt: skip
DOC = "4455667788^FOREMAN^ERIC^^^DR^^^NPI&2.16.840.1.113883.4.6&ISO^^^^NPI"


def _pv1(mrn: str, unit: str, prior: str = "", discharged: str = "") -> str:
    fields = ["PV1", "1", "I", f"{unit}^401^A^RGH^^^^MEDSURG", "", "", prior and f"{prior}^401^A^RGH", DOC, "", "",
              "MED", "", "", "", "1", "", "", DOC, "IP", f"V-{mrn}^^^RGH^VN", "MCR"]  # fmt: skip
    fields += [""] * (44 - len(fields)) + ["20261108084500-0500", discharged]
    return "|".join(fields)


def adt(
    ev: str, mrn: str, *, unit: str = "5E", prior: str = "", body: tuple[str, ...] = (), discharged: str = ""
) -> bytes:
    struct = {"A01": "ADT_A01", "A02": "ADT_A02", "A03": "ADT_A03", "A08": "ADT_A01", "A40": "ADT_A39"}[ev]
    segments = [
        MSH.format(ts="20261108090000-0500", ev=ev, struct=struct, ctl=f"{mrn}-{ev}"),
        f"EVN|{ev}|20261108090000-0500",
        f"PID|1||{mrn}^^^RGH^MR||DOE^ALEX||19800101|X|||1 MAIN ST^^SPRINGFIELD^IL^62701",
    ]
    if ev == "A40":
        segments += [*body]
    else:
        segments += [PD1, _pv1(mrn, unit, prior, discharged), *body, IN1]
    return ("\r".join(segments) + "\r").encode()


#: Each Part 2 signal in its own position, for its own patient (so every leak names its position).
DG1_CODE = "DG1|1||F11.20^Opioid dependence, uncomplicated^I10|||A"
DG1_TEXT = "DG1|1|||Opioid dependence, in remission||A"
PV2_3 = "PV2|||^Opioid withdrawal, detox admission"
OBX = "OBX|1|CWE|11450-4^Problem list^LN||5602001^Opioid abuse^SCT||||||F"
PROGRAM_ADMIT: dict[str, bytes] = {
    "program unit PV1-3 with DG1 code": adt("A01", "P2-DG1C", unit="4W-SUD", body=(DG1_CODE,)),
    "program unit PV1-3 with DG1-4 text": adt("A01", "P2-DG1T", unit="4W-SUD", body=(DG1_TEXT,)),
    "program unit PV1-3 with PV2-3 admit reason": adt("A01", "P2-PV23", unit="4W-SUD", body=(PV2_3,)),
    "program unit PV1-3 with OBX value": adt("A01", "P2-OBX", unit="4W-SUD", body=(OBX,)),
}
#: After a program admit of the same visit, each for its own patient: events whose own PV1-3 is elsewhere.
AFTER_ADMIT: dict[str, bytes] = {
    "A02 transfer out of the program unit (PV1-6)": adt(
        "A02", "P2-A02", unit="5E", prior="4W-SUD", body=(DG1_CODE,)
    ),  # fmt: skip
    "A08 update of a program visit (sticky)": adt("A08", "P2-A08", unit="5E", body=(DG1_TEXT,)),
    "A03 discharge of a program visit (sticky)": adt(
        "A03", "P2-A03", unit="5E", body=(DG1_CODE,), discharged="20261112100000-0500"
    ),  # fmt: skip
}
RRC_ADMIT = (Path(__file__).parents[2] / "demo" / "feed" / "09-a01-admit-recovery-center-part2.hl7").read_bytes()
A40 = adt("A40", "P2-MERGED", body=("MRG|RRC-20931^^^RRC^MR",))
#: Not Part 2: it reaches every channel, the HIE's topic included.
PLAIN_ADMIT = (Path(__file__).parents[2] / "demo" / "feed" / "05-a01-admit-okafor.hl7").read_bytes()


def _directory(config: Path, http: HttpSink, mllp: MllpSink, prefix: str) -> None:
    """Every recipient on a real peer; one rule sends every ADT event to the extra channels."""
    text = (config / "recipients.yaml").read_text()
    for rid in ("pcp-riverside", "payer-acme", "pharmacy-mainst", "cbo-foodbank"):
        default = {"pcp-riverside": "9101", "payer-acme": "9102", "pharmacy-mainst": "9103", "cbo-foodbank": "9104"}
        text = text.replace(f"http://127.0.0.1:{default[rid]}/fhir/$process-message", http.url(rid))
    text += f"""
  - id: care-fhir
    name: Care management FHIR server
    kind: care-manager
    channel: fhir-rest
    endpoint: {http.url("care-fhir")}
    formats: [davinci-notification]
  - id: ehr-forward
    name: Partner EHR (HL7v2 forward; a health plan's, so a redacted forward is allowed)
    kind: payer
    channel: mllp
    endpoint: {mllp.url}
    formats: [hl7v2]
  - id: hie-state
    name: State HIE
    kind: hie
    channel: kafka
    endpoint: kafka:{prefix}out.hie.{{recipient}}
    formats: [davinci-notification]
"""
    (config / "recipients.yaml").write_text(text)
    routes = (config / "routes.yaml").read_text()
    routes += """  - id: every-channel
    description: every ADT event to the care manager, the partner EHR and the HIE
    when:
      kind: [admit, register, transfer, discharge, update, merge]
    actions:
      - notify: care-fhir
      - forward: ehr-forward
      - notify: hie-state
"""
    (config / "routes.yaml").write_text(routes)


@pytest.fixture
async def sinks() -> AsyncIterator[tuple[HttpSink, MllpSink]]:
    http, mllp = HttpSink(), MllpSink()
    await http.start()
    await mllp.start()
    yield http, mllp
    await http.stop()
    await mllp.stop()


def _settings(config: Path, broker: str, http: HttpSink, mllp: MllpSink, **delivery: Any) -> Settings:
    s = hub_settings(config, broker)
    _directory(config, http, mllp, s.kafka.topic_prefix)
    return replace(s, delivery=replace(s.delivery, **delivery))


async def _send(hub: Hub, *messages: bytes) -> None:
    client = MLLPClient("127.0.0.1", hub.mllp_port)
    for message in messages:
        assert ack_code(await client.send(message)) == "AA"
    await client.close()


def _http(hub: Hub, method: str, path: str, body: Any, *scopes: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{hub.http_port}{path}", data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Content-Type": "application/fhir+json", **TEST_ISSUER.headers(*scopes)},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def _parked(hub: Hub) -> list[str]:
    """The PCP's parked dead letters, as an operator lists them."""
    status, listing = _http(hub, "GET", "/admin/dlq?state=parked", None, OPS_READ)
    assert status == 200, listing
    return [d["delivery_id"] for d in listing["dead_letters"] if d["recipient_id"] == "pcp-riverside"]


async def _settled(hub: Hub) -> None:
    """Every routed delivery has an outcome (delivered, failed or suppressed) and the audit trail caught up."""
    await eventually(lambda: hub.metrics.total("routed_events") > 0)
    last = -1.0
    while True:  # until nothing moves for a second
        now = hub.metrics.total("consent") + hub.metrics.total("delivered") + hub.metrics.total("delivery_suppressed")
        if now == last:
            return
        last = now
        await asyncio.sleep(1.0)


#: Which position a body belongs to, by the patient identifier it names.
POSITION_OF = {
    "P2-DG1C": "DG1 code", "P2-DG1T": "DG1-4 text", "P2-PV23": "PV2-3 admit reason", "P2-OBX": "OBX value",
    "P2-A02": "A02 transfer out of the program unit (PV1-6)", "P2-A08": "A08 update of a program visit (sticky)",
    "P2-A03": "A03 discharge of a program visit (sticky)", "P2-MERGED": "A40 merge of the program MRN (sticky)",
    "RRC-20931": "A01 from the program (RRC)", "MRN100234": "FHIR-path Encounter with labels",
    "P2-PCP": "program admit under a PCP-only consent",
}  # fmt: skip


def _position(body: bytes) -> str:
    named = [p for key, p in POSITION_OF.items() if key.encode() in body]
    if POSITION_OF["P2-MERGED"] in named:
        return POSITION_OF["P2-MERGED"]
    return " / ".join(named) or "unknown"


def _leaks(http: HttpSink, mllp: MllpSink, topics: dict[str, list[bytes]]) -> dict[str, list[str]]:
    """Position -> where its markers were found and which."""
    found: dict[str, set[str]] = {}
    bodies = [(f"{r.recipient} (HTTP)", r.body) for r in http.received]
    bodies += [("ehr-forward (MLLP)", m) for m in mllp.received]
    bodies += [(f"topic {topic}", v) for topic, values in topics.items() for v in values]
    for where, body in bodies:
        if hit := markers(body):
            found.setdefault(_position(body), set()).add(f"{where}: {', '.join(hit)}")
    return {k: sorted(v) for k, v in found.items()}


async def test_no_consent_no_marker_reaches_any_recipient_or_external_topic(
    broker: str, config_dir: Path, sinks: tuple[HttpSink, MllpSink], source: SourceServer, issuer: Issuer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    http, mllp = sinks
    (config_dir / "subscriptions.yaml").write_text(subscriptions_yaml(source.base_url))
    hub = Hub(_settings(config_dir, broker, http, mllp))
    await hub.start()
    try:
        monkeypatch.setenv("CAREHUB_PUBLIC_URL", f"http://127.0.0.1:{hub.http_port}")
        await _send(hub, *PROGRAM_ADMIT.values())
        for mrn in ("P2-A02", "P2-A08", "P2-A03"):
            await _send(hub, adt("A01", mrn, unit="4W-SUD", body=(DG1_CODE, PV2_3)))
        await _send(hub, *AFTER_ADMIT.values())
        await _send(hub, RRC_ADMIT)
        await _settled(hub)  # the program MRN's status is known before the merge that retires it
        await _send(hub, A40, PLAIN_ADMIT)
        # the FHIR path: an Encounter labelled 42CFRPart2/R by its source, reason F11.20
        assert await asyncio.to_thread(subscribe.run, argparse.Namespace(source="ehr", config_dir=config_dir)) == 0
        sub_id = next(iter(source.subscriptions))
        labels = [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "42CFRPart2"},
                  {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}]  # fmt: skip
        reason = [{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "F11.20",
                               "display": "Opioid dependence, uncomplicated"}]}]  # fmt: skip
        ref = source.put({**encounter(status="in-progress"), "reasonCode": reason})
        source.resources[ref]["meta"]["security"] = labels
        assert await source.event(sub_id, "Encounter/e-1") == 200
        await _settled(hub)
        topics = await external_topics(hub.bootstrap, hub.topics)
    finally:
        await hub.stop()

    hie = topics.get(f"{hub.topics.prefix}out.hie.hie-state", [])
    assert hie, f"the HIE's topic got the plain admit: {sorted(topics)}"
    assert not any(b"MSH|" in v or b"source_hl7" in v for values in topics.values() for v in values), (
        "no raw HL7v2 on an external topic"
    )
    assert mllp.received and http.bodies("care-fhir"), "every channel carried the plain admit"
    leaks = _leaks(http, mllp, topics)
    known = {k: v for k, v in leaks.items() if k in UNDETECTED_POSITIONS}
    if known:
        print(f"KNOWN GAPS (undetected positions, see UNDETECTED_POSITIONS): {json.dumps(known, indent=1)}")
    assert leaks == known, f"Part 2 markers left the hub without consent: {json.dumps(leaks, indent=1)}"
    fixed = sorted(UNDETECTED_POSITIONS - set(leaks))
    assert not fixed, f"now detected, so remove them from UNDETECTED_POSITIONS (the list must not hide a leak): {fixed}"


CONSENT_PATIENT = ("urn:carehub:authority:RGH", "P2-PCP")


async def test_a_consent_naming_only_the_pcp_discloses_to_the_pcp_alone_with_the_notice(
    broker: str, config_dir: Path, sinks: tuple[HttpSink, MllpSink], issuer: Issuer
) -> None:
    http, mllp = sinks
    hub = Hub(_settings(config_dir, broker, http, mllp))
    await hub.start()
    try:
        only_pcp = consent("pcp-only", named=("pcp-riverside",), patient=CONSENT_PATIENT, start="2026-01-01",
                           end="2099-12-31")  # fmt: skip
        status, _ = await asyncio.to_thread(_http, hub, "POST", "/fhir/Consent", only_pcp, *CONSENT_ADMIN)
        assert status == 201
        await _send(hub, adt("A01", "P2-PCP", unit="4W-SUD", body=(DG1_CODE, PV2_3, OBX)))
        await eventually(lambda: http.bodies("pcp-riverside"))
        await _settled(hub)
        topics = await external_topics(hub.bootstrap, hub.topics)
    finally:
        await hub.stop()
    pcp = [json.loads(b) for b in http.bodies("pcp-riverside")]
    assert len(pcp) == 1 and markers(json.dumps(pcp[0]).encode()), "the PCP gets the whole record"
    notices = {e["url"]: e["valueString"] for e in pcp[0]["entry"][0]["resource"].get("extension", [])}
    assert notices[NOTICE_EXTENSION] == NOTICE
    others = [r for r in http.received if r.recipient != "pcp-riverside"]
    leaks = _leaks(HttpSink(received=others), mllp, topics)
    assert leaks == {}, f"recipients the consent does not name received Part 2 data: {leaks}"


async def test_revocation_stops_retries_queued_deliveries_and_dead_letter_replays(
    broker: str, config_dir: Path, sinks: tuple[HttpSink, MllpSink], issuer: Issuer
) -> None:
    http, mllp = sinks
    # slow, many retries: the revocation lands while the first delivery waits on a retry topic
    hub = Hub(_settings(config_dir, broker, http, mllp, max_attempts=60, backoff_initial_s=1.0, backoff_max_s=1.0,
                        breaker_failures=1000))  # fmt: skip
    await hub.start()
    try:
        patient = ("urn:carehub:authority:RGH", "P2-REVOKE")
        granted = consent("revoke-me", named=("pcp-riverside",), patient=patient, end="2099-12-31")
        status, _ = await asyncio.to_thread(_http, hub, "POST", "/fhir/Consent", granted, *CONSENT_ADMIN)
        assert status == 201

        # 1. a dead letter: the PCP refuses (400) the admit while the consent is in force
        http.status["pcp-riverside"] = 400
        await _send(hub, adt("A01", "P2-REVOKE", unit="4W-SUD", body=(DG1_CODE,)))
        for _ in range(200):
            if len(await asyncio.to_thread(_parked, hub)) == 1:
                break
            await asyncio.sleep(0.1)
        # 2. a retry: the PCP is down (503) for the transfer, and the discharge queues behind it
        http.status["pcp-riverside"] = 503
        await _send(hub, adt("A02", "P2-REVOKE", unit="5E", prior="4W-SUD", body=(DG1_CODE,)))
        await eventually(lambda: hub.metrics.total("delivery_retried") >= 1)
        await _send(hub, adt("A03", "P2-REVOKE", unit="4W-SUD", body=(DG1_CODE,), discharged="20261112100000-0500"))
        await eventually(lambda: hub.metrics.total("delivery_queued") >= 1)

        revoked = {**granted, "status": "inactive"}
        status, _ = await asyncio.to_thread(_http, hub, "PUT", "/fhir/Consent/revoke-me", revoked, *CONSENT_ADMIN)
        assert status == 201
        seen = len(http.bodies("pcp-riverside"))
        http.status["pcp-riverside"] = 200  # the PCP is back: only the gate can stop what is in flight now

        parked = await asyncio.to_thread(_parked, hub)
        status, answer = await asyncio.to_thread(_http, hub, "POST", "/admin/dlq/replay", {"ids": parked},
                                                 OPS_READ, OPS_WRITE)  # fmt: skip
        assert status == 200 and answer["replayed"] == parked, answer
        await eventually(lambda: hub.metrics.total("delivery_suppressed") >= 3, timeout_s=40)
        await asyncio.sleep(1.5)  # a retry tier's worth: nothing else may arrive
        assert len(http.bodies("pcp-riverside")) == seen, "nothing reached the PCP after the revocation"
        database = hub.settings.database_url
    finally:
        await hub.stop()

    out = subprocess.run(
        [str(Path(sys.executable).parent / "carehub"), "audit", "disclosures", "--patient", "RGH|P2-REVOKE",
         "--json", "--database-url", database],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rows = [json.loads(line) for line in out.splitlines()]
    pcp = [r for r in rows if r["recipient_id"] == "pcp-riverside"]
    stopped = [r for r in pcp if r["phase"] == "send" and r["outcome"] == "deny"]
    assert len(stopped) >= 3, rows
    assert all(r["delivery"] == "suppressed at send time" for r in stopped), [r["delivery"] for r in stopped]
    assert all("suppressed at send time" in r["reason"] and "revoke-me" in r["reason"] for r in stopped), stopped
    permits = [r for r in rows if r["phase"] == "send" and r["outcome"] == "permit"]
    assert permits and {r["delivery"] for r in permits} <= {"suppressed at send time", "delivered"}, permits


async def test_an_hie_consented_by_its_class_reads_the_record_on_its_own_topic_only(
    broker: str, config_dir: Path, sinks: tuple[HttpSink, MllpSink], issuer: Issuer
) -> None:
    http, mllp = sinks
    hub = Hub(_settings(config_dir, broker, http, mllp))
    await hub.start()
    try:
        patient = ("urn:carehub:authority:RGH", "P2-HIE")
        to_hies = consent("hie-class", classes=("health-information-exchanges",), patient=patient, end="2099-12-31")
        status, _ = await asyncio.to_thread(_http, hub, "POST", "/fhir/Consent", to_hies, *CONSENT_ADMIN)
        assert status == 201
        await _send(hub, adt("A01", "P2-HIE", unit="4W-SUD", body=(DG1_CODE, PV2_3)))
        topic = f"{hub.topics.prefix}out.hie.hie-state"
        for _ in range(100):
            found = await external_topics(hub.bootstrap, hub.topics)
            if found.get(topic):
                break
            await asyncio.sleep(0.2)
        await _settled(hub)
        found = await external_topics(hub.bootstrap, hub.topics)
    finally:
        await hub.stop()
    (record,) = found[topic]
    bundle = json.loads(record)
    assert markers(record), "the HIE, consented by class, gets the record"
    notices = {e["url"]: e["valueString"] for e in bundle["entry"][0]["resource"].get("extension", [])}
    assert notices[NOTICE_EXTENSION] == NOTICE and b"MSH|" not in record
    others = [r for r in http.received if b"P2-HIE" in r.body]
    assert not _leaks(HttpSink(received=others), mllp, {}), "the class covers HIEs, nobody else"
