"""CareEvents for stream tests, built without the mapping engine."""

from __future__ import annotations

from typing import Any

from carehub.core.records import CareEvent


def care_event(kind: str = "admit", encounter_class: str = "IMP", facility: str = "RGH", **extra: Any) -> CareEvent:
    patient = {
        "resourceType": "Patient",
        "id": "p1",
        "identifier": [{"system": "urn:oid:1.2", "value": "MRN1"}],
        "managingOrganization": {"reference": "Organization/o1"},
    }
    encounter = {
        "resourceType": "Encounter",
        "id": "e1",
        "status": "in-progress",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": encounter_class or "AMB"},
        "subject": {"reference": "Patient/p1"},
        "location": [{"location": {"reference": "Location/l1"}}],
    }
    resources = [
        patient,
        encounter,
        {"resourceType": "Location", "id": "l1", "name": "4W"},
        {"resourceType": "Organization", "id": "o1", "name": "RGH"},
        {"resourceType": "Observation", "id": "unrelated", "status": "final", "code": {"text": "x"}},
    ]
    fields: dict[str, Any] = {
        "event_id": f"ev-{kind}-{encounter_class}",
        "kind": kind,
        "occurred_at": "2026-11-01T16:30:00Z",
        "patient_key": "RGH|MRN1",
        "identifiers": [{"system": "RGH", "value": "MRN1", "type": "MR"}],
        "encounter_class": encounter_class,
        "facility": facility,
        "source": {"control_id": "C1"},
        "bundle": {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": r} for r in resources],
        },
        "patient_id": "p1",
        "encounter_id": "e1",
        "location": "4W",
        "trigger": {"admit": "A01", "discharge": "A03", "update": "A08"}.get(kind, "A04"),
    }
    fields.update(extra)
    return CareEvent(**fields)
