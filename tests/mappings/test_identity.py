"""Deterministic ids and event kinds: one visit, one Encounter, across triggers."""

from __future__ import annotations

from pathlib import Path

import pytest

from carehub.mappings import convert_text
from tests.mappings.conftest import read_message

A01 = "msfc__ADT_A01__ADT-A01-01.hl7"


def _with_trigger(text: str, trigger: str) -> str:
    msh, _, rest = text.partition("\r")
    fields = msh.split("|")
    fields[8] = f"ADT^{trigger}"
    return "|".join(fields) + "\r" + rest


@pytest.fixture(scope="module")
def admit(corpus_dir: Path) -> str:
    return "\r".join(read_message(corpus_dir / A01).replace("\r\n", "\r").replace("\n", "\r").split("\r"))


def test_admit_and_discharge_share_patient_and_encounter_ids(admit: str) -> None:
    first = convert_text(admit)
    second = convert_text(_with_trigger(admit, "A03"))
    assert first.event.kind == "admit" and second.event.kind == "discharge"
    assert first.event.patient_id == second.event.patient_id
    assert first.event.encounter_id == second.event.encounter_id is not None
    encounter = next(e["resource"] for e in second.bundle["entry"] if e["resource"]["resourceType"] == "Encounter")
    assert encounter["status"] == "finished"
    assert first.event.event_id != second.event.event_id


def test_conversion_is_deterministic(admit: str) -> None:
    assert convert_text(admit).event.to_json() == convert_text(admit).event.to_json()


@pytest.mark.parametrize(
    ("trigger", "kind", "status"),
    [
        ("A01", "admit", "in-progress"),
        ("A02", "transfer", "in-progress"),
        ("A04", "register", "planned"),
        ("A06", "transfer", "in-progress"),
        ("A08", "update", "unknown"),
        ("A11", "cancel-admit", "cancelled"),
        ("A12", "cancel-transfer", "in-progress"),
        ("A13", "cancel-discharge", "in-progress"),
    ],
)
def test_trigger_sets_kind_and_status(admit: str, trigger: str, kind: str, status: str) -> None:
    result = convert_text(_with_trigger(admit, trigger))
    encounter = next(e["resource"] for e in result.bundle["entry"] if e["resource"]["resourceType"] == "Encounter")
    assert (result.event.kind, result.event.trigger, encounter["status"]) == (kind, trigger, status)


def test_merge_links_patients_and_names_the_retired_key(corpus_dir: Path) -> None:
    result = convert_text(read_message(corpus_dir / "lfh__ADT_A40__HL7MergeFHIRConversionTest_L277.hl7"))
    assert result.event.kind == "merge"
    assert result.event.encounter_id is None
    assert result.event.attributes["merged_from"] == ["XYZ|MR2"]
    assert result.event.attributes["merges"] == [
        {"from": "XYZ|MR2", "into": "XYZ|MR1"},
        {"from": "XYZ|MR4", "into": "XYZ|MR3"},
    ]
    assert result.unmapped == []
    patients = [e["resource"] for e in result.bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
    links = {p["id"]: [link["type"] for link in p.get("link", [])] for p in patients}
    assert links[result.event.patient_id] == ["replaces"]
    assert sorted(map(tuple, links.values())) == [("replaced-by",), ("replaced-by",), ("replaces",), ("replaces",)]
    assert result.event.identifiers[0]["value"] == "MR1"


def test_visit_number_scopes_the_encounter(admit: str) -> None:
    other_visit = admit.replace("40007716^^^AccMng&1.2&HCD^AM", "40007717^^^AccMng&1.2&HCD^AM")
    assert other_visit != admit
    assert convert_text(other_visit).event.encounter_id != convert_text(admit).event.encounter_id
