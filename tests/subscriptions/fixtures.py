"""FHIR resources the source server serves: the demo feed's patient, seen from an EHR's FHIR API."""

from __future__ import annotations

from typing import Any

RGH = "urn:carehub:authority:RGH"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def patient(pid: str = "p-rivera", mrn: str = "MRN100234") -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": RGH, "value": mrn, "type": {"coding": [{"system": V2_0203, "code": "MR"}]}}],
        "name": [{"family": "RIVERA", "given": ["MARIA"]}],
        "birthDate": "1958-04-12",
        "generalPractitioner": [{"reference": "Practitioner/pr-welby"}],
    }


def encounter(
    eid: str = "e-1",
    status: str = "in-progress",
    visit: str = "V77001",
    location: str = "Location/loc-4w",
    pid: str = "p-rivera",
    klass: str = "IMP",
) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": eid,
        "identifier": [{"system": RGH, "value": visit, "type": {"coding": [{"system": V2_0203, "code": "VN"}]}}],
        "status": status,
        "class": {"system": ACT, "code": klass},
        "subject": {"reference": f"Patient/{pid}"},
        "location": [{"location": {"reference": location}, "status": "active"}],
        "period": {"start": "2026-11-01T11:25:00-05:00"},
    }


def supporting() -> list[dict[str, Any]]:
    return [
        {
            "resourceType": "Practitioner",
            "id": "pr-welby",
            "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}],
            "name": [{"family": "WELBY", "given": ["MARCUS"]}],
        },
        {
            "resourceType": "Organization",
            "id": "org-acme",
            "name": "ACME HEALTH PLAN",
            "identifier": [{"system": "urn:carehub:authority:ACME", "value": "PAYER-ACME"}],
        },
        {
            "resourceType": "Coverage",
            "id": "cov-1",
            "status": "active",
            "beneficiary": {"reference": "Patient/p-rivera"},
            "payor": [{"reference": "Organization/org-acme"}],
        },
        {"resourceType": "Location", "id": "loc-4w", "name": "4W/412/A"},
        {"resourceType": "Location", "id": "loc-icu", "name": "ICU/2/B"},
    ]
