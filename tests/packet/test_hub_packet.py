"""Packets through a running hub: a real broker, a real FHIR source (SMART backend auth), real HTTP recipients.

One hub for the module. Each test uses its own patient: a discharge completed
from the source; one whose medication search the source never answers within the
budget (and whose problem search fails); the A13 that cancels a discharge.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from carehub.connectors.mllp import MLLPClient, ack_code
from carehub.demo_receivers import DemoRecipient, Received
from carehub.hub import Hub
from carehub.journal import Journal
from carehub.streams.packet.document import packet_of, packet_problems
from tests.authkit import RECIPIENT, Issuer
from tests.conftest import CONFIG
from tests.integration.conftest import PCP_SECRET, eventually, hub_settings
from tests.packet.events import FULL_DISCHARGE, allergy, medication_request
from tests.packet.test_document import Doc
from tests.subscriptions.fixtures import patient
from tests.subscriptions.source_server import SourceServer

pytestmark = pytest.mark.integration
CLIENT_ID = "carehub-packets"
#: Long enough for the token and the queries of a loaded 2-core CI machine (stalls of ~0.8 s seen), and
#: shorter than the source's own timeout (``timeout_s: 3`` below), so a source that never answers is
#: reported as out of budget, not as a read timeout.
BUDGET_S = 2.0
SLOW_MRN = "MRN555001"


@dataclass
class World:
    hub: Hub
    source: SourceServer
    pcp: DemoRecipient
    payer: DemoRecipient
    config_dir: Path


def _sources_yaml(source: SourceServer, key_file: Path) -> str:
    return f"""
sources:
  - name: ehr
    base_url: {source.base_url}
    facility: RGH
    timeout_s: 3
    auth: {{type: smart-backend, token_url: {source.token_url}, client_id: {CLIENT_ID},
            private_key_file: {key_file}, key_id: k1}}
    subscriptions:
      - name: encounters
        topic: http://hl7.org/SubscriptionTopic/admission
        endpoint: http://127.0.0.1:1/fhir/notify/ehr/encounters
        secret: ""
"""


def _fixtures(source: SourceServer) -> None:
    """Rivera (MRN100234): medications, an allergy, a problem, a pending report, the discharge summary."""
    source.put(patient())
    source.put(patient("p-slow", SLOW_MRN))
    for rx in (medication_request("Patient/p-rivera"), medication_request("Patient/p-slow", "rx-2")):
        source.put(rx)
    source.put(allergy("Patient/p-rivera"))
    source.put({**allergy("Patient/p-slow"), "id": "al-10"})
    source.put({
        "resourceType": "Condition", "id": "c-ckd", "subject": {"reference": "Patient/p-rivera"},
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category",
                                  "code": "problem-list-item"}]}],
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "431855005",
                             "display": "Chronic kidney disease stage 1"}]},
    })  # fmt: skip
    source.put({
        "resourceType": "DiagnosticReport", "id": "dr-echo", "status": "preliminary",
        "subject": {"reference": "Patient/p-rivera"},
        "code": {"coding": [{"system": "http://loinc.org", "code": "34552-0", "display": "2D echocardiogram panel"}]},
    })  # fmt: skip
    source.put({
        "resourceType": "DocumentReference", "id": "doc-ds", "status": "current",
        "subject": {"reference": "Patient/p-rivera"}, "description": "Discharge summary, cardiology",
        "type": {"coding": [{"system": "http://loinc.org", "code": "18842-5", "display": "Discharge summary"}]},
        "content": [{"attachment": {"contentType": "application/pdf", "url": "Binary/ds-1"}}],
    })  # fmt: skip


def _key_pair(folder: Path) -> tuple[Path, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path = folder / "client.pem"
    path.write_bytes(pem)
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return path, public.decode()


@pytest.fixture(scope="module")
async def world(broker: str, issuer: Issuer, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    folder = tmp_path_factory.mktemp("packet")
    key_file, public = _key_pair(folder)
    source = SourceServer(client_public_key=public, client_id=CLIENT_ID)
    await source.start()
    _fixtures(source)
    never = asyncio.Event()
    source.holds["MedicationRequest?patient=Patient/p-slow"] = never
    source.failures["Condition?patient=Patient/p-slow"] = 500
    config_dir = folder / "config"
    shutil.copytree(CONFIG, config_dir, ignore=shutil.ignore_patterns("schemas"))
    (config_dir / "subscriptions.yaml").write_text(_sources_yaml(source, key_file))
    (config_dir / "packet.yaml").write_text(f"enrichment:\n  budget_s: {BUDGET_S}\n  sources: [ehr]\n")
    pcp = DemoRecipient("pcp-riverside", PCP_SECRET)
    payer = DemoRecipient("payer-acme", os.environ["CAREHUB_SECRET_PAYER_ACME"])
    with pytest.MonkeyPatch.context() as env:
        for recipient in (pcp, payer):
            await recipient.start()
        env.setenv("CAREHUB_ENDPOINT_PCP_RIVERSIDE", pcp.url)
        env.setenv("CAREHUB_ENDPOINT_PAYER_ACME", payer.url)
        env.setenv("CAREHUB_SECRET_PCP_RIVERSIDE", PCP_SECRET)
        hub = Hub(hub_settings(config_dir, broker))
        await hub.start()
        try:
            yield World(hub, source, pcp, payer, config_dir)
        finally:
            never.set()
            await hub.stop()
            for recipient in (pcp, payer):
                await recipient.stop()
            await source.stop()


async def _send(port: int, *messages: bytes) -> None:
    client = MLLPClient("127.0.0.1", port)
    try:
        for message in messages:
            assert ack_code(await client.send(message)) == "AA"
    finally:
        await client.close()


def _discharge(**swap: str) -> bytes:
    raw = FULL_DISCHARGE.read_bytes()
    for old, new in swap.items():
        raw = raw.replace(old.encode(), new.encode())
    return raw


def _cancel(raw: bytes, control: str) -> bytes:
    """The discharge re-typed as its A13 (cancel discharge)."""
    header, _, rest = raw.partition(b"\r")
    fields = header.split(b"|")
    fields[8], fields[9] = b"ADT^A13^ADT_A01", control.encode()
    return b"|".join(fields) + b"\r" + rest.replace(b"EVN|A03", b"EVN|A13", 1)


def _of(recipient: DemoRecipient, mrn: str, code: str) -> list[Received]:
    return [r for r in recipient.received if r.event_code == code and mrn.encode() in _raw(r)]


def _raw(got: Received) -> bytes:
    return json.dumps(got.bundle).encode()


def _document(got: Received) -> Doc:
    document = packet_of(got.bundle)
    assert document is not None
    return Doc(document)


async def test_a_discharge_packet_is_completed_from_the_source_with_smart_backend_auth(world: World) -> None:
    pcp, payer, source = world.pcp, world.payer, world.source
    await _send(world.hub.mllp_port, _discharge())
    await eventually(lambda: _of(pcp, "MRN100234", "toc-packet") and _of(payer, "MRN100234", "toc-packet"))
    codes = [r.event_code for r in pcp.received if b"MRN100234" in _raw(r)]
    assert codes.index("notification-discharge") < codes.index("toc-packet"), "the notification goes first"
    got = _of(pcp, "MRN100234", "toc-packet")[0]
    assert got.signature_ok and packet_problems(got.bundle) == []
    doc = _document(got)
    meds = doc.entries("10183-2", "MedicationRequest")
    assert [m["medicationCodeableConcept"]["coding"][0]["code"] for m in meds] == ["200031"]
    assert doc.by_ref[meds[0]["subject"]["reference"]]["identifier"][0]["value"] == "MRN100234"
    allergies = {c["code"] for a in doc.entries("48765-2", "AllergyIntolerance") for c in a["code"]["coding"]}
    assert allergies == {"70618", "91936005"}, "AL1 and the source's allergy"
    assert [p["code"]["coding"][0]["code"] for p in doc.entries("11450-4", "Condition")] == ["431855005"]
    pending = {r["resourceType"]: r for r in doc.entries("pending")}
    assert pending["DiagnosticReport"]["status"] == "preliminary" and pending["Observation"]["status"] == "preliminary"
    summary = doc.entries("8648-8", "DocumentReference")
    assert [d["description"] for d in summary] == ["Discharge summary, cardiology"]
    assert summary[0]["content"][0]["attachment"]["url"] == "Binary/ds-1"
    assert all(s["code"]["coding"][0]["code"] != "missing" for s in doc.composition["section"])
    assert source.requests.count("POST /token") == 1, "one SMART token, cached for every search"
    searched = {r.split("?")[0] for r in source.requests if r.startswith("GET /fhir/")}
    assert searched >= {"GET /fhir/Patient", "GET /fhir/MedicationRequest", "GET /fhir/MedicationStatement",
                        "GET /fhir/AllergyIntolerance", "GET /fhir/Condition", "GET /fhir/DiagnosticReport",
                        "GET /fhir/DocumentReference"}  # fmt: skip
    assert world.hub.metrics.get("packets_planned", recipient="pcp-riverside") >= 1
    assert world.hub.metrics.get("packet_enrichment", outcome="complete") >= 1


async def test_a_source_that_does_not_answer_in_time_leaves_a_packet_that_says_so(world: World) -> None:
    pcp = world.pcp
    discharge = _discharge(MRN100234=SLOW_MRN, V77001="V55501", RGH0104="RGH5104")
    await _send(world.hub.mllp_port, discharge)
    await eventually(lambda: _of(pcp, SLOW_MRN, "notification-discharge"))
    await eventually(lambda: _of(pcp, SLOW_MRN, "toc-packet"))
    assert not world.source.holds["MedicationRequest?patient=Patient/p-slow"].is_set(), "still no answer"
    doc = _document(_of(pcp, SLOW_MRN, "toc-packet")[0])
    meds = doc.section("10183-2")
    assert "entry" not in meds and meds["emptyReason"]["coding"][0]["code"] == "unavailable"
    assert f"MedicationRequest: no answer within {BUDGET_S:g} s" in meds["emptyReason"]["text"]
    assert "Condition: search Condition: the source answered 500" in doc.section("11450-4")["emptyReason"]["text"]
    missing = doc.narrative("missing")
    assert "MedicationRequest: no answer within" in missing and "Condition: search Condition" in missing
    assert {c["code"] for a in doc.entries("48765-2") for c in a["code"]["coding"]} == {"70618", "91936005"}, (
        "what answered in time is in"
    )
    assert _codes(doc.entries("11535-2")) == {"I21.4", "I50.22"}, "the ADT's content is all there"
    assert world.hub.metrics.get("packet_enrichment", outcome="partial") >= 1


def _codes(resources: list[dict[str, Any]]) -> set[str]:
    return {c["code"] for r in resources for c in r["code"]["coding"]}


async def test_a13_revokes_the_careplan_at_every_packet_recipient(world: World) -> None:
    pcp, payer = world.pcp, world.payer
    mrn = "MRN700013"
    discharge = _discharge(MRN100234=mrn, V77001="V70013", RGH0104="RGH7104")
    await _send(world.hub.mllp_port, discharge)
    await eventually(lambda: _of(pcp, mrn, "toc-packet") and _of(payer, mrn, "toc-packet"))
    plan = _document(_of(pcp, mrn, "toc-packet")[0]).entries("18776-5", "CarePlan")[0]
    await _send(world.hub.mllp_port, _cancel(discharge, "RGH7113"))
    await eventually(lambda: _of(pcp, mrn, "careplan-revoked") and _of(payer, mrn, "careplan-revoked"))
    for recipient in (pcp, payer):
        got = _of(recipient, mrn, "careplan-revoked")[0]
        assert packet_problems(got.bundle) == []
        revoked = next(e["resource"] for e in got.bundle["entry"] if e["resource"]["resourceType"] == "CarePlan")
        assert revoked["id"] == plan["id"] and revoked["identifier"] == plan["identifier"], "the same CarePlan"
        assert revoked["status"] == "revoked" and "discharge was cancelled (A13)" in revoked["note"][0]["text"]
    assert len(_of(pcp, mrn, "task-cancelled")) == 2, "and its Tasks are cancelled"


def _journal(world: World) -> Journal:
    journal = world.hub._delivery.journal if world.hub._delivery else None
    assert journal is not None
    return journal


async def _set_status(world: World, issuer: Issuer, task_id: str, status: str, recipient: str) -> None:
    url = f"http://127.0.0.1:{world.hub.http_port}/fhir/Task/{task_id}"
    headers = {**issuer.headers(*RECIPIENT, recipient=recipient), "Content-Type": "application/fhir+json"}
    async with aiohttp.ClientSession(headers=headers) as http, http.patch(url, json={"status": status}) as r:
        assert r.status == 200, await r.text()


def _plan_of(got: Received) -> dict[str, Any]:
    return next(e["resource"] for e in got.bundle["entry"] if e["resource"]["resourceType"] == "CarePlan")


def _tasks_of(got: Received) -> dict[str, dict[str, Any]]:
    return {e["resource"]["id"]: e["resource"] for e in got.bundle["entry"] if e["resource"]["resourceType"] == "Task"}


async def test_task_updates_through_the_task_endpoint_keep_the_careplan_in_step(world: World, issuer: Issuer) -> None:
    pcp, payer = world.pcp, world.payer
    mrn = "MRN800001"
    await _send(world.hub.mllp_port, _discharge(MRN100234=mrn, V77001="V80001", RGH0104="RGH8104"))
    await eventually(lambda: _of(pcp, mrn, "toc-packet") and _of(payer, mrn, "toc-packet"))
    sent_plan = _document(_of(pcp, mrn, "toc-packet")[0]).entries("18776-5", "CarePlan")[0]
    tasks = [a["reference"]["reference"] for a in sent_plan["activity"] if a["reference"]["reference"][:5] == "Task/"]
    contact, visit = (t.removeprefix("Task/") for t in tasks)  # (and the heart-failure logistics orders)
    await eventually(lambda: _journal(world).tasks.get(contact) is not None and _journal(world).tasks.get(visit))

    await _set_status(world, issuer, contact, "completed", "pcp-riverside")  # the practice made the TCM contact
    await eventually(lambda: _of(pcp, mrn, "careplan-update") and _of(payer, mrn, "careplan-update"))
    for recipient in (pcp, payer):  # every member of the care team sees the same plan
        got = _of(recipient, mrn, "careplan-update")[0]
        assert got.signature_ok and packet_problems(got.bundle) == []
        plan, tasks = _plan_of(got), _tasks_of(got)
        assert plan["id"] == sent_plan["id"] and plan["status"] == "active"
        progress = {a["reference"]["reference"]: a.get("progress", [{}])[0].get("text") for a in plan["activity"]}
        assert progress == {f"Task/{contact}": "Task completed", f"Task/{visit}": "Task requested"}
        assert tasks[contact]["status"] == "completed" and tasks[visit]["status"] == "requested"
        assert tasks[contact]["owner"]["identifier"]["value"] == "pcp-riverside"

    await _set_status(world, issuer, visit, "completed", "pcp-riverside")
    await eventually(
        lambda: len(_of(pcp, mrn, "careplan-update")) == 2 and len(_of(payer, mrn, "careplan-update")) == 2
    )
    assert _plan_of(_of(payer, mrn, "careplan-update")[1])["status"] == "completed", "every Task done: plan completed"
    stored = _journal(world).careplans.get(sent_plan["id"])
    assert stored is not None and stored.status == "completed" and stored.patient_key == f"RGH|{mrn}"
    assert {m.recipient_id for m in stored.members} == {"pcp-riverside", "payer-acme"}


async def test_a13_revokes_the_plan_in_the_journal_and_its_cancelled_tasks_send_no_update(world: World) -> None:
    pcp = world.pcp
    mrn = "MRN800013"
    discharge = _discharge(MRN100234=mrn, V77001="V80013", RGH0104="RGH8113")
    await _send(world.hub.mllp_port, discharge)
    await eventually(lambda: _of(pcp, mrn, "toc-packet"))
    plan_id = _document(_of(pcp, mrn, "toc-packet")[0]).entries("18776-5", "CarePlan")[0]["id"]
    await _send(world.hub.mllp_port, _cancel(discharge, "RGH8114"))
    await eventually(lambda: len(_of(pcp, mrn, "task-cancelled")) == 2 and _of(pcp, mrn, "careplan-revoked"))
    stored = _journal(world).careplans.get(plan_id)
    assert stored is not None and stored.status == "revoked"
    await eventually(
        lambda: all(
            "cancelled" in (a.get("progress") or [{}])[0].get("text", "")
            for a in _journal(world).careplans.get(plan_id).resource["activity"]
        )
    )  # type: ignore[union-attr]
    assert _of(pcp, mrn, "careplan-update") == [], "the revocation told them; the cancelled Tasks add nothing"


async def test_a_merge_keeps_the_careplan_and_it_follows_the_survivor(world: World, issuer: Issuer) -> None:
    pcp = world.pcp
    retired, survivor = "MRN900001", "MRN900002"
    await _send(world.hub.mllp_port, _discharge(MRN100234=retired, V77001="V90001", RGH0104="RGH9104"))
    await eventually(lambda: _of(pcp, retired, "toc-packet"))
    plan = _document(_of(pcp, retired, "toc-packet")[0]).entries("18776-5", "CarePlan")[0]
    pid = next(s for s in FULL_DISCHARGE.read_bytes().split(b"\r") if s.startswith(b"PID|"))
    merge = b"\r".join([
        b"MSH|^~\\&|EPICADT|RGH^2.16.840.1.113883.3.9999.1^ISO|CAREHUB|CAREHUB|20261107090000-0500||ADT^A40^ADT_A39|"
        b"RGH9140|P|2.5.1",
        b"EVN|A40|20261107090000-0500",
        pid.replace(b"MRN100234", survivor.encode()),
        b"MRG|" + retired.encode() + b"^^^RGH^MR",
    ]) + b"\r"  # fmt: skip
    await _send(world.hub.mllp_port, merge)
    await eventually(lambda: _journal(world).careplans.of_patient(f"RGH|{survivor}") == [plan["id"]])
    assert _journal(world).careplans.of_patient(f"RGH|{retired}") == []
    task = plan["activity"][0]["reference"]["reference"].removeprefix("Task/")
    await eventually(lambda: _journal(world).tasks.get(task) is not None)
    await _set_status(world, issuer, task, "in-progress", "pcp-riverside")
    await eventually(lambda: _of(pcp, survivor, "careplan-update"))
    got = _of(pcp, survivor, "careplan-update")[0]
    assert _plan_of(got)["id"] == plan["id"], "one CarePlan per episode, across the merge"
    patient = next(e["resource"] for e in got.bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    assert patient["identifier"] == [{"system": "urn:carehub:patient", "value": f"RGH|{survivor}"}]


async def test_a_part2_unit_discharge_reaches_the_payer_redacted_and_the_pcp_not_at_all(world: World) -> None:
    pcp, payer = world.pcp, world.payer
    mrn = "MRNP20001"
    discharge = _discharge(MRN100234=mrn, V77001="VP2001", RGH0104="RGHP2104", **{
        "CCU^02^A^RGH^^^^CARDIAC ICU": "4W-SUD^401^A^RGH",  # the hospital's addiction medicine unit (part2.yaml)
        "I50.22^Chronic systolic heart failure": "F11.20^Opioid dependence, uncomplicated",
    })  # fmt: skip
    await _send(world.hub.mllp_port, discharge)
    await eventually(lambda: _of(payer, mrn, "toc-packet"))
    got = _of(payer, mrn, "toc-packet")[0]
    assert packet_problems(got.bundle) == []
    text = json.dumps(got.bundle)
    for revealing in ("F11.20", "Opioid", "4W-SUD", "I21.4", "Penicillin", "carvedilol"):
        assert revealing not in text, revealing
    doc = _document(got)
    for code in ("11535-2", "47519-4", "48765-2", "30954-2", "10183-2", "pending", "11450-4"):
        section = doc.section(code)
        assert "entry" not in section and section["emptyReason"]["coding"][0]["code"] == "withheld", code
    assert doc.entries("8648-8", "Encounter"), "what the allow-list keeps: the stay itself"
    security = {s["code"] for s in got.bundle["meta"]["security"]}
    assert {"R", "NORDSCLCD"} <= security
    assert _of(pcp, mrn, "toc-packet") == [], "no permitting consent: the PCP gets no packet"
    assert _of(pcp, mrn, "notification-discharge") == []
