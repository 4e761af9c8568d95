"""Encounter transitions and identity: the same patient key and visit ids as the ADT maps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from carehub.core.errors import MappingError
from carehub.mappings import convert_text
from carehub.mappings.fhir import EncounterSnapshot, FhirSource, map_encounter, transition
from carehub.streams.dedup import decide
from tests.conftest import FEED
from tests.subscriptions.fixtures import encounter, patient, supporting

SOURCE = FhirSource("ehr", "RGH", "http://ehr/fhir", "encounters", 7, "2026-11-01T16:25:00Z", "2026-11-01T16:25:01Z")


def related() -> dict[str, dict[str, Any]]:
    return {f"{r['resourceType']}/{r['id']}": r for r in [patient(), *supporting()]}


@pytest.mark.parametrize(
    ("before", "after", "kind"),
    [
        (None, "in-progress", "admit"),
        ("planned", "in-progress", "admit"),
        ("arrived", "in-progress", "admit"),
        ("in-progress", "finished", "discharge"),
        (None, "finished", "discharge"),
        ("finished", "finished", None),
        ("in-progress", "in-progress", None),
        ("planned", "cancelled", None),
        ("finished", "in-progress", None),
    ],
)
def test_status_transitions(before: str | None, after: str, kind: str | None) -> None:
    previous = EncounterSnapshot(before, "Location/a", "IMP") if before else None
    assert transition(previous, EncounterSnapshot(after, "Location/a", "IMP")).kind == kind


def test_location_or_class_change_in_progress_is_a_transfer() -> None:
    was = EncounterSnapshot("in-progress", "Location/a", "IMP")
    assert transition(was, EncounterSnapshot("in-progress", "Location/b", "IMP")).kind == "transfer"
    moved = transition(was, EncounterSnapshot("in-progress", "Location/a", "EMER"))
    assert (moved.kind, moved.reason) == ("transfer", "class changed IMP -> EMER")


def test_the_fhir_admit_names_the_same_patient_and_visit_as_the_adt_a01() -> None:
    adt = convert_text((FEED / "02-a01-admit-rivera.hl7").read_text()).event
    fhir = map_encounter(encounter(), related(), EncounterSnapshot("planned"), SOURCE).event
    assert fhir is not None
    assert (fhir.kind, fhir.trigger) == ("admit", "A01")
    assert fhir.patient_key == adt.patient_key == "RGH|MRN100234"
    assert fhir.patient_id == adt.patient_id
    assert fhir.encounter_id == adt.encounter_id
    assert fhir.encounter_class == adt.encounter_class == "IMP"
    assert [p["identifiers"] for p in fhir.attributes["pcp"]][0] == adt.attributes["pcp"][0]["identifiers"]
    assert (
        fhir.attributes["payers"][0]["payors"][0]["identifiers"]
        == adt.attributes["payers"][0]["payors"][0]["identifiers"]
    )
    assert not decide(fhir, decide(adt, ()).seen).route, "the second copy of the visit's admit is not routed"


def test_bundle_references_resolve_inside_it() -> None:
    event = map_encounter(encounter(), related(), None, SOURCE).event
    assert event is not None
    ids = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in event.bundle["entry"]}
    refs = set(_refs(event.bundle))
    assert refs <= ids
    assert f"Encounter/{event.encounter_id}" in ids and f"Patient/{event.patient_id}" in ids
    assert event.location == "4W/412/A"


def _refs(value: Any) -> list[str]:
    if isinstance(value, dict):
        own = [value["reference"]] if isinstance(value.get("reference"), str) else []
        return own + [r for v in value.values() for r in _refs(v)]
    return [r for v in value for r in _refs(v)] if isinstance(value, list) else []


def test_no_event_when_nothing_relevant_changed_but_the_snapshot_moves_on() -> None:
    result = map_encounter(encounter(status="planned"), related(), None, SOURCE)
    assert result.event is None and result.snapshot.status == "planned"
    assert "not a start or an end" in result.transition.reason


def test_an_encounter_without_its_patient_is_a_mapping_error(backport: Path) -> None:
    import json

    bundle = json.loads((backport / "full_resource_notification_bundle_example.json").read_text())
    corpus_encounter = bundle["entry"][1]["resource"]
    with pytest.raises(MappingError, match="Patient"):
        map_encounter(corpus_encounter, {}, None, SOURCE)
