"""The packet document: sections modelled on C-CDA on FHIR Discharge Summary, the TRC content list, R4-valid."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from carehub.cli import main
from carehub.core.records import CareEvent, Delivery
from carehub.streams.consent.redact import redact
from carehub.streams.notify import Hub
from carehub.streams.packet.document import packet_of, packet_problems
from carehub.streams.packet.enrich import Enrichment, EnrichmentNote, Missing, localize, with_enrichment
from carehub.streams.packet.sections import LOINC, SECTIONS, TRC_ELEMENTS
from carehub.streams.plan import plan_deliveries
from carehub.streams.routing.decide import decide
from carehub.streams.routing.load import load_routing_map
from tests.conftest import CONFIG, REPO
from tests.packet.events import FULL_DISCHARGE, allergy, discharge, medication_request

HUB = Hub(base_url="https://hub.example.org/fhir")
NOW = "2026-11-05T19:30:00Z"


def _deliveries(event: CareEvent) -> list[Delivery]:
    return plan_deliveries(event, decide(event, load_routing_map(CONFIG)), HUB, NOW)


def _packet(event: CareEvent, recipient: str = "pcp-riverside") -> tuple[dict[str, Any], Delivery]:
    found = [d for d in _deliveries(event) if d.action == "packet" and d.recipient_id == recipient]
    assert len(found) == 1, "one packet per recipient"
    document = packet_of(found[0].payload.value)
    assert document is not None
    return document, found[0]


class Doc:
    """A document Bundle read the way a receiver reads it: sections, and references resolved inside it."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.by_ref = {
            f"{e['resource']['resourceType']}/{e['resource']['id']}": e["resource"] for e in document["entry"]
        }
        self.composition = document["entry"][0]["resource"]

    def section(self, code: str) -> dict[str, Any]:
        found = [s for s in self.composition["section"] if s["code"]["coding"][0]["code"] == code]
        assert len(found) == 1, f"one section {code}"
        return found[0]

    def entries(self, code: str, resource_type: str | None = None) -> list[dict[str, Any]]:
        refs = [e["reference"] for e in self.section(code).get("entry", [])]
        resources = [self.by_ref[r] for r in refs]  # KeyError = a reference that does not resolve
        return [r for r in resources if resource_type is None or r["resourceType"] == resource_type]

    def narrative(self, code: str) -> str:
        return str(self.section(code)["text"]["div"])


def _codes(resources: list[dict[str, Any]]) -> set[str]:
    return {c["code"] for r in resources for c in r["code"]["coding"]}


def _enriched(event: CareEvent) -> CareEvent:
    fetched = localize([medication_request("Patient/src-7"), allergy("Patient/src-7")], "ehr", "Patient/src-7", event)
    return with_enrichment(event, Enrichment(EnrichmentNote("ehr"), tuple(fetched)))


def test_the_trc_discharge_information_list_element_by_element() -> None:
    doc = Doc(_packet(_enriched(discharge()))[0])
    elements = dict(TRC_ELEMENTS)
    assert len(elements) == 6
    # 1. the practitioner responsible during the stay: PV1-7, by NPI, named in the narrative
    responsible = doc.entries("8648-8", "Practitioner")
    assert [i["value"] for p in responsible for i in p["identifier"]] == ["1122334455"]
    assert "Responsible (attending) practitioner: DR GREGORY HOUSE" in doc.narrative("8648-8")
    assert doc.entries("8648-8", "Encounter")[0]["period"]["end"] == "2026-11-05T14:00:00-05:00"
    # 2. procedures or treatment provided: PR1
    procedures = doc.entries("47519-4", "Procedure")
    assert _codes(procedures) == {"4A023N7"} and procedures[0]["performedDateTime"].startswith("2026-11-02")
    # 3. diagnoses at discharge: DG1
    assert _codes(doc.entries("11535-2", "Condition")) == {"I21.4", "I50.22"}
    assert "Chronic systolic heart failure" in doc.narrative("11535-2")
    # 4. current medication list: from the source, its references resolving in the packet
    meds = doc.entries("10183-2", "MedicationRequest")
    assert _codes([{"code": m["medicationCodeableConcept"]} for m in meds]) == {"200031"}
    assert doc.by_ref[meds[0]["subject"]["reference"]]["resourceType"] == "Patient"
    assert meds[0]["requester"] == {"display": "Dr Gregory House"}, (
        "a reference to what was not fetched keeps its display"
    )
    assert "carvedilol 6.25 MG Oral Tablet: one tablet twice daily" in doc.narrative("10183-2")
    # 5. testing results, or pending tests: OBX final in results, OBX preliminary in pending
    results = doc.entries("30954-2", "Observation")
    assert _codes(results) == {"2160-0"} and results[0]["valueQuantity"] == {"value": 1.4, "unit": "mg/dL"}
    assert _codes(doc.entries("pending", "Observation")) == {"6598-7"}
    # 6. instructions for care after discharge: each follow-up with its owner and due date
    instructions = doc.narrative("8653-8")
    assert (
        "TCM interactive contact within 2 business days of discharge: Riverside Family Practice, due by 2026-11-09"
        in instructions
    )
    assert "TCM face-to-face visit after discharge: Riverside Family Practice, due by 2026-11-19" in instructions
    assert {t["status"] for t in doc.entries("8653-8", "Task")} == {"requested"}


def test_allergies_disposition_care_team_and_plan() -> None:
    event = _enriched(discharge())
    document, _ = _packet(event)
    doc = Doc(document)
    allergies = doc.entries("48765-2", "AllergyIntolerance")
    assert _codes(allergies) == {"70618", "91936005"}, "AL1 and the source's allergy"
    assert allergies[0]["criticality"] == "high"
    assert "Disposition: Home" in doc.narrative("disposition")
    assert [loc["name"] for loc in doc.entries("disposition", "Location")] == ["Sunrise Home Health"]  # PV1-37
    team = doc.entries("85847-2", "CareTeam")[0]
    roles = {p["role"][0]["text"]: doc.by_ref[p["member"]["reference"]] for p in team["participant"]}
    assert roles["attending physician"]["name"][0]["family"] == "HOUSE"
    assert roles["primary care provider"]["resourceType"] in ("Practitioner", "Organization")
    assert roles["follow-up task owner"]["name"] == "Riverside Family Practice"
    plan = doc.entries("18776-5", "CarePlan")[0]
    assert plan["status"] == "active" and plan["intent"] == "plan"
    task_keys = {d.idempotency_key for d in _deliveries(event) if d.action == "task"}
    activity = {
        a["reference"]["reference"] for a in plan["activity"] if a["reference"]["reference"].startswith("Task/")
    }
    assert activity == {f"Task/{k}" for k in task_keys}, "activities are the Tasks delivered, by their hub ids"
    for ref in activity:
        task = doc.by_ref[ref]
        assert (
            task["restriction"]["period"]["end"]
            and doc.by_ref[task["owner"]["reference"]]["resourceType"] == "Organization"
        )
    assert {doc.by_ref[r["reference"]]["resourceType"] for r in plan["addresses"]} == {"Condition"}


def test_sections_follow_the_profile_and_the_packet_is_valid_r4() -> None:
    document, delivery = _packet(discharge())
    assert packet_problems(delivery.payload.value) == []
    assert document["type"] == "document" and document["identifier"]["value"].startswith("urn:uuid:")
    composition = Doc(document).composition
    assert composition["type"]["coding"][0] == {"system": LOINC, "code": "18842-5", "display": "Discharge summary"}
    assert [s["code"]["coding"][0]["code"] for s in composition["section"]] == [s.code for s in SECTIONS]
    assert all("text" in s for s in composition["section"])
    header = delivery.payload["entry"][0]["resource"]
    assert header["eventCoding"]["code"] == "toc-packet" and header["focus"] == [
        {"reference": f"Bundle/{document['id']}"}
    ]
    again, _ = _packet(discharge())
    assert again == document, "the same delivery rebuilds the same packet"


def test_without_a_source_or_in_time_the_packet_says_what_is_missing() -> None:
    doc = Doc(_packet(discharge())[0])
    meds = doc.section("10183-2")
    assert "entry" not in meds and meds["emptyReason"]["coding"][0]["code"] == "unavailable"
    assert "No FHIR source is configured" in meds["emptyReason"]["text"]
    late = EnrichmentNote("ehr", (Missing("MedicationRequest", "no answer within 0.5 s"),))
    doc = Doc(_packet(with_enrichment(discharge(), Enrichment(late)))[0])
    assert "MedicationRequest: no answer within 0.5 s" in doc.section("10183-2")["emptyReason"]["text"]
    assert doc.section("missing")["title"] == "Information not available"
    assert "MedicationRequest: no answer within 0.5 s" in doc.narrative("missing")
    pending = doc.section("pending")  # the ADT's pending OBX is listed; the source's reports were answered
    assert _codes(doc.entries("pending")) == {"6598-7"}
    complete = Doc(_packet(with_enrichment(discharge(), Enrichment(EnrichmentNote("ehr"))))[0])
    assert complete.section("10183-2")["emptyReason"]["coding"][0]["code"] == "nilknown"
    assert pending["entry"]


def test_a_redacted_disclosure_withholds_the_clinical_sections() -> None:
    event = _enriched(discharge())
    hidden = redact(replace_basis(event))
    doc = Doc(_packet(hidden)[0])
    for code in ("11535-2", "47519-4", "48765-2", "30954-2", "10183-2", "pending"):
        section = doc.section(code)
        assert "entry" not in section and section["emptyReason"]["coding"][0]["code"] == "withheld", code
    assert "I21.4" not in json.dumps(doc.document) and "carvedilol" not in json.dumps(doc.document)
    assert doc.entries("8648-8", "Encounter"), "the visit itself is allow-listed"


def replace_basis(event: CareEvent) -> CareEvent:
    """The event as from an identified Part 2 unit of a general hospital (redactable)."""
    return replace(event, attributes={**event.attributes, "part2_basis": "location"})


def test_carehub_packet_prints_the_dry_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["packet", str(FULL_DISCHARGE), "--config-dir", str(CONFIG)]) == 0
    out, err = capsys.readouterr()
    document = json.loads(out)
    assert document["type"] == "document" and document["entry"][0]["resource"]["resourceType"] == "Composition"
    assert "Medications: empty (unavailable)" in err and "Procedures: 1 entry" in err
    assert main(["packet", str(FULL_DISCHARGE), "--config-dir", str(CONFIG), "--recipient", "payer-acme",
                 "--message"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["type"] == "message"
    admit = REPO / "demo" / "feed" / "02-a01-admit-rivera.hl7"
    assert main(["packet", str(admit), "--config-dir", str(CONFIG)]) == 1
    assert "sends a packet" in capsys.readouterr().err


def test_the_careplan_lists_the_logistics_orders_of_the_discharge_too() -> None:
    rivera = discharge(REPO / "demo" / "feed" / "04-a03-discharge-rivera.hl7")  # heart failure: oxygen, a ride
    deliveries = _deliveries(rivera)
    orders = {d.delivery_id for d in deliveries if d.action == "order"}
    assert len(orders) == 2
    packet = next(d for d in deliveries if d.action == "packet" and d.recipient_id == "pcp-riverside")
    assert packet_problems(packet.payload.value) == []
    document = packet_of(packet.payload.value)
    assert document is not None
    doc = Doc(document)
    plan = doc.entries("18776-5", "CarePlan")[0]
    ordered = {
        a["reference"]["reference"]
        for a in plan["activity"]
        if a["reference"]["reference"].startswith("ServiceRequest/")
    }
    assert ordered == {f"ServiceRequest/{key}" for key in orders}
    assert {doc.by_ref[r]["category"][0]["coding"][0]["code"] for r in ordered} == {"dme", "nemt"}
    assert "Non-emergency medical transport: wheelchair: arranged by carehub" in doc.narrative("8653-8")


def test_each_recipients_packet_of_one_event_is_what_it_would_be_alone() -> None:
    """What the packets of one event share is built once (streams.packet.document's body memo): every
    recipient's packet must still be exactly the one built for it from scratch, with its own ids."""
    from carehub.streams.packet.document import packet_document

    event = discharge(FULL_DISCHARGE)
    tasks: list[Any] = []
    first = packet_document(event, hub=HUB, key="key-a", timestamp=NOW, tasks=tasks)
    second = packet_document(event, hub=HUB, key="key-b", timestamp=NOW, tasks=tasks)
    alone = packet_document(replace(event), hub=HUB, key="key-b", timestamp=NOW, tasks=list(tasks))
    assert json.dumps(second, sort_keys=False) == json.dumps(alone, sort_keys=False)
    ids = [{e["resource"]["id"] for e in p["entry"] if e["resource"]["resourceType"] in ("Composition", "Provenance")}
           for p in (first, second)]  # fmt: skip
    assert ids[0].isdisjoint(ids[1]), "each delivery's key seeds its own Composition and Provenance"
    assert Doc(second).composition["identifier"]["value"] == "key-b"
    later = packet_document(event, hub=HUB, key="key-b", timestamp="2026-11-06T08:00:00Z", tasks=tasks)
    assert later["timestamp"] == "2026-11-06T08:00:00Z" and later != second, "another time is another body"
