"""Part 2 / SUD detection in every position the signal can be, HL7v2 and FHIR (decision tests).

Each case starts from a general-hospital admit with nothing sensitive in it
(the demo feed's cardiac admit) and puts the signal in one position.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from carehub.core.errors import ConfigError
from carehub.core.records import CareEvent
from carehub.mappings import convert_text
from carehub.mappings.fhir import EncounterSnapshot, FhirSource, map_encounter
from carehub.streams.consent.codes import PART2, SUD
from carehub.streams.consent.labels import Detection, apply_labels, detect, has_label
from carehub.streams.consent.policy import load_policy
from carehub.streams.consent.positions import compile_patterns
from carehub.streams.consent.sticky import Part2Status, observe, prior
from carehub.streams.consent.valueset import builtin_sud, load_value_sets
from tests.conftest import CONFIG, FEED
from tests.subscriptions.fixtures import encounter, patient, supporting

POLICY = load_policy(CONFIG)
ADMIT = "\r".join((FEED / "02-a01-admit-rivera.hl7").read_text().splitlines())
DG1 = "DG1|1||I21.4^Non-ST elevation (NSTEMI) myocardial infarction^I10|||A"
PV1 = "PV1|1|I|4W^412^A^RGH^^^^MEDSURG||||"


def _hl7(*extra: str, dg1: str = DG1, pv1: str = PV1, msh_tail: str = "") -> CareEvent:
    text = ADMIT.replace(DG1, dg1).replace(PV1, pv1)
    lines = text.split("\r")
    lines[0] += msh_tail
    pv1_at = next(i for i, line in enumerate(lines) if line.startswith("PV1"))
    lines[pv1_at + 1 : pv1_at + 1] = list(extra)
    return convert_text("\r".join(lines) + "\r").event


def _detect(event: CareEvent) -> Detection:
    return detect(event, POLICY.registry)


def test_the_baseline_carries_no_signal() -> None:
    found = _detect(_hl7())
    assert not (found.part2 or found.sud or found.restricted), found


@pytest.mark.parametrize(
    ("dg1", "reason"),
    [
        ("DG1|1||F11.20^Opioid dependence, uncomplicated^I10|||A", "SUD code F11.20"),
        ("DG1|1||F1020^Alcohol dependence^I10|||A", "SUD code F1020"),
        ("DG1|1||T40.1X1A^Poisoning by heroin, accidental^I10|||A", "SUD code T40.1X1A"),
        ("DG1|1||5602001^Opioid abuse^SCT|||A", "SUD code 5602001"),
        ("DG1|1||66590003^^SCT|||A", "SUD code 66590003"),
        ("DG1|1||R45.87^Impulsiveness^I10|Opioid use disorder, severe||A", "DG1-4"),
        ("DG1|1||^Heroin addiction^|||A", "SUD text at Condition.code"),
    ],
    ids=["icd10cm", "icd10-no-dot", "t40-heroin", "snomed-abuse", "snomed-no-display", "dg1-4-text", "dg1-3-text"],
)
def test_sud_diagnoses_are_found_by_code_and_by_text(dg1: str, reason: str) -> None:
    found = _detect(_hl7(dg1=dg1))
    assert found.sud and not found.part2, "an SUD diagnosis at a general facility is HIPAA PHI, labelled SUD"
    assert any(reason in r for r in found.reasons), found.reasons


def test_tobacco_is_not_a_substance_use_disorder_under_part2() -> None:
    assert not _detect(_hl7(dg1="DG1|1||F17.210^Nicotine dependence, cigarettes^I10|||A")).sud


def test_pv2_3_admit_reason() -> None:
    found = _detect(_hl7("PV2|||DETOX^Opioid withdrawal, detox admission^L"))
    assert found.sud and any("Encounter.reasonCode" in r for r in found.reasons), found.reasons


@pytest.mark.parametrize(
    ("obx", "position"),
    [
        ("OBX|1|CWE|11331-6^History of alcohol use^LN||66590003^Alcohol dependence^SCT||||||F", "SUD code 66590003"),
        ("OBX|1|CWE|LOCAL1^Dx^L||F11.23^Opioid dependence with withdrawal^I10||||||F", "SUD code F11.23"),
        ("OBX|1|ST|LOCAL2^Note^L||patient on methadone maintenance||||||F", "Observation.valueString"),
    ],
)
def test_obx_coded_and_string_values(obx: str, position: str) -> None:
    found = _detect(_hl7(obx))
    assert found.sud and any(position in r for r in found.reasons), found.reasons


@pytest.mark.parametrize(
    ("pv1", "basis"),
    [
        ("PV1|1|I|4W-SUD^401^A^RGH^^^^ADDICTION||||", "location"),
        ("PV1|1|I|5E^501^A^RGH|||4W-SUD^401^A^RGH|", "location"),
    ],
    ids=["pv1-3-program-unit", "pv1-6-transfer-out-of-the-unit"],
)
def test_program_units_now_and_before(pv1: str, basis: str) -> None:
    found = _detect(_hl7(pv1=pv1))
    assert (found.part2, found.program_id, found.basis) == (True, "rgh-addiction-unit", basis), found


def test_pv1_10_program_service() -> None:
    event = _hl7()
    found = _detect(replace(event, attributes={**event.attributes, "hospital_service": "ADM"}))
    assert (found.part2, found.basis) == (True, "service")


@pytest.mark.parametrize(
    ("segment", "msh_tail", "position"),
    [
        ("PV2|" + "|" * 21 + "Y", "", "PV2-22"),
        ("ARV|1|A|PSY^psychiatric^HL70717|DIA^diagnosis related^HL70719", "", "ARV-3"),
        ("", "||||||||R^restricted^HL70952", "MSH-26"),
    ],
    ids=["pv2-22-visit-protection", "arv-access-restriction", "msh-26-restricted"],
)
def test_sender_restrictions_are_part2_by_policy(segment: str, msh_tail: str, position: str) -> None:
    event = _hl7(*([segment] if segment else []), msh_tail=msh_tail)
    found = _detect(event)
    assert (found.part2, found.restricted, found.basis) == (True, True, "sender"), found
    assert any(position in r for r in found.reasons), found.reasons
    labelled = detect(event, replace(POLICY.registry, sender_restrictions="label"))
    assert labelled.restricted and not labelled.part2, "policy 'label': restricted (R) but not Part 2"


def test_a_deleted_access_restriction_is_not_a_restriction() -> None:
    assert not _detect(_hl7("ARV|1|D|PSY^psychiatric^HL70717")).restricted


def test_msh_27_handling_instruction_naming_part2() -> None:
    found = _detect(_hl7(msh_tail="|||||||||42CFRPart2^42 CFR Part 2^HL70953~NORDSCLCD"))
    assert found.part2 and any("MSH-27" in r for r in found.reasons), found.reasons


def test_labelling_twice_changes_nothing() -> None:
    event = _hl7("PV2|||DETOX^Opioid withdrawal, detox admission^L", pv1="PV1|1|I|5E^501^A^RGH|||4W-SUD^401^A^RGH|")
    once = apply_labels(event, POLICY.registry)
    assert has_label(once.labels, PART2) and has_label(once.labels, SUD)
    assert apply_labels(once, POLICY.registry) == once


def _fhir(enc: dict[str, object], extra: list[dict[str, object]] | None = None) -> CareEvent:
    related = {f"{r['resourceType']}/{r['id']}": r for r in [patient(), *supporting(), *(extra or [])]}
    source = FhirSource("ehr", "RGH", "http://ehr/fhir", "encounters", 7, "2026-11-01T16:25:00Z", "")
    mapped = map_encounter(enc, related, EncounterSnapshot("planned"), source).event
    assert mapped is not None
    return mapped


def test_fhir_encounter_with_source_labels_and_reason_code_is_labelled() -> None:
    labels = [
        {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "42CFRPart2"},
        {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"},
    ]
    reason = [{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "F11.20"}]}]
    event = _fhir({**encounter(), "meta": {"versionId": "3", "security": labels}, "reasonCode": reason})
    enc = next(e["resource"] for e in event.bundle["entry"] if e["resource"]["resourceType"] == "Encounter")
    assert {s["code"] for s in enc["meta"]["security"]} == {"42CFRPart2", "R"}, "the source's labels are kept"
    found = _detect(event)
    assert found.part2 and found.sud and found.basis == "sender", found
    labelled = apply_labels(event, POLICY.registry)
    assert has_label(labelled.labels, PART2) and has_label(labelled.labels, SUD)


def test_fhir_diagnosis_and_service_type_are_read() -> None:
    condition = {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p-rivera"},
                 "code": {"coding": [{"system": "http://snomed.info/sct", "code": "5602001"}]}}  # fmt: skip
    service = {"coding": [{"system": "urn:local", "code": "ADM"}]}
    enc = {**encounter(), "diagnosis": [{"condition": {"reference": "Condition/c1"}}], "serviceType": service}
    event = _fhir(enc, [condition])
    assert {"system": "http://snomed.info/sct", "code": "5602001"} in event.attributes["diagnoses"]
    assert event.attributes["hospital_service"] == "ADM"
    found = _detect(event)
    assert found.part2 and found.basis == "service" and "SUD code 5602001" in found.reasons


def test_the_shipped_value_set() -> None:
    sud = builtin_sud()
    assert sud.contains("http://hl7.org/fhir/sid/icd-10-cm", "F19.988")
    assert sud.contains("", "F11.20") and sud.contains("urn:oid:2.16.840.1.113883.6.90", "t40.1x1a")
    assert not sud.contains("http://hl7.org/fhir/sid/icd-10-cm", "F17.210")
    assert not sud.contains("http://hl7.org/fhir/sid/icd-10-cm", "T40.2X1A"), "prescribed opioids: policy choice"
    assert sud.contains("http://snomed.info/sct", "5602001") and not sud.contains("http://loinc.org", "5602001")


def test_value_sets_from_the_config_directory(tmp_path: Path) -> None:
    document = {"resourceType": "ValueSet", "compose": {"include": [
        {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "concept": [{"code": "1010600"}]}]}}  # fmt: skip
    (tmp_path / "local.json").write_text(json.dumps(document))
    found = load_value_sets(["builtin:sud", "local.json"], tmp_path)
    assert found.contains("http://www.nlm.nih.gov/research/umls/rxnorm", "1010600") and found.contains("", "F10.20")
    bad = {"resourceType": "ValueSet", "compose": {"include": [{"system": "http://snomed.info/sct",
           "filter": [{"property": "concept", "op": "is-a", "value": "1"}]}]}}  # fmt: skip
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ConfigError, match="is-a"):
        load_value_sets(["bad.json"], tmp_path)
    with pytest.raises(ConfigError, match="no built-in"):
        load_value_sets(["builtin:nope"], tmp_path)


def test_an_episode_closes_with_the_discharge_and_reopens_with_a_cancel() -> None:
    admit = _hl7(pv1="PV1|1|I|4W-SUD^401^A^RGH||||")
    status = observe(Part2Status(), admit, "rgh-addiction-unit", "location", [])
    assert status.open_episode is not None and status.program_id == "rgh-addiction-unit"
    ed = replace(_hl7(), encounter_id="ed-visit", encounter_class="EMER")
    assert prior(ed, status, [], ed_of_open_episode=True) is not None
    assert prior(ed, status, [], ed_of_open_episode=False) is None, "policy can switch the ED rule off"
    discharged = observe(status, replace(admit, kind="discharge"), "rgh-addiction-unit", "location", [])
    assert discharged.open_episode is None and prior(ed, discharged, [], ed_of_open_episode=True) is None
    later = prior(replace(admit, kind="update"), discharged, [], ed_of_open_episode=True)
    assert later is not None and later.basis == "location", "the visit itself stays Part 2 after it ends"
    reopened = observe(discharged, replace(admit, kind="cancel-discharge"), "rgh-addiction-unit", "location", [])
    assert reopened.open_episode is not None
    assert Part2Status.from_dict(reopened.to_dict()) == reopened


def test_a_merge_of_a_program_facility_record_is_part2_without_any_state() -> None:
    event = _hl7()
    merged = replace(event, kind="merge", attributes={**event.attributes, "merged_from": ["RRC|RRC-20931"]})
    found = _detect(merged)
    assert (found.part2, found.program_id, found.basis) == (True, "riverside-recovery", "facility")


def test_labelling_an_event_again_scans_only_the_resources_it_has_not_seen() -> None:
    """The route labels an event, then the gatekeeper labels it again with the LACE index added: each resource
    is scanned once while it lives (core.memo), and an added resource is scanned too."""
    from carehub.streams.consent import positions

    registry = POLICY.registry
    event = _hl7("OBX|1|CWE|11323-3^Health status^LN||F10.20^Alcohol dependence^I10||||||F")
    first = detect(event, registry)
    scans: list[str] = []
    real = positions.resource_findings

    def counted(resource: dict[str, object], *args: object) -> list[positions.Finding]:
        scans.append(str(resource.get("resourceType")))
        return real(resource, *args)  # type: ignore[arg-type]

    positions.resource_findings = counted  # type: ignore[assignment]
    try:
        assert detect(event, registry) == first
        assert scans == []
        extra = {"resourceType": "Observation", "id": "lace", "status": "final", "code": {"text": "LACE"}}
        bundle = {**event.bundle, "entry": [*event.bundle["entry"], {"resource": extra}]}
        again = detect(replace(event, bundle=bundle), registry)
    finally:
        positions.resource_findings = real  # type: ignore[assignment]
    assert scans == ["Observation"]
    assert again.sud and first.sud


def test_text_patterns_are_one_search_unless_a_backreference_needs_its_own_groups() -> None:
    joined = compile_patterns([r"\bdetox", r"\bopioid (use|abuse)\b"])
    assert len(joined) == 1
    texts = ["Detox unit", "opioid ABUSE", "opioid users", "retox"]
    assert [joined[0].search(t) is not None for t in texts] == [True, True, False, False]
    separate = compile_patterns([r"(a)\1", "b"])
    assert len(separate) == 2
    assert separate[0].search("xAA") and not separate[0].search("ab")
