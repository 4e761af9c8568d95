"""A discharge with everything an ADT can carry for a packet: DG1, PR1, AL1, OBX (final and pending), PV1-36/37."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from carehub.core.records import CareEvent
from carehub.mappings import convert_text

FULL_DISCHARGE = Path(__file__).parent / "a03-discharge-full.hl7"


def discharge(path: Path = FULL_DISCHARGE) -> CareEvent:
    text = path.read_text()
    return replace(convert_text(text, validate=False).event, source_hl7=text)


def medication_request(patient_ref: str, rx_id: str = "rx-1") -> dict[str, object]:
    """A MedicationRequest as a source FHIR server returns it (its own ids, its own Patient)."""
    return {
        "resourceType": "MedicationRequest",
        "id": rx_id,
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "200031",
                        "display": "carvedilol 6.25 MG Oral Tablet"}]
        },
        "subject": {"reference": patient_ref},
        "requester": {"reference": "Practitioner/not-fetched", "display": "Dr Gregory House"},
        "dosageInstruction": [{"text": "one tablet twice daily"}],
    }  # fmt: skip


def allergy(patient_ref: str) -> dict[str, object]:
    return {
        "resourceType": "AllergyIntolerance",
        "id": "al-9",
        "patient": {"reference": patient_ref},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "91936005",
                             "display": "Sulfonamide allergy"}]},
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                                       "code": "active"}]},
    }  # fmt: skip
