"""The packet's Composition sections, modelled on C-CDA on FHIR Discharge Summary (data).

Profile: http://hl7.org/fhir/us/ccda/StructureDefinition/Discharge-Summary (C-CDA on FHIR
1.2.0, R4); document type LOINC 18842-5 *Discharge summary*. Each section keeps the
LOINC code of the C-CDA section it corresponds to. Two items of the HEDIS TRC
"receipt of discharge information" list have no section of their own in that
profile (C-CDA carries the disposition on the encounter and pending tests inside
the plan of treatment); they get local codes (``urn:carehub:packet-section``) so
that a reader finds them without parsing narrative.
"""

from __future__ import annotations

from dataclasses import dataclass

LOINC = "http://loinc.org"
LOCAL_SECTION = "urn:carehub:packet-section"
PROFILE = "http://hl7.org/fhir/us/ccda/StructureDefinition/Discharge-Summary"
DOCUMENT_TYPE = {"system": LOINC, "code": "18842-5", "display": "Discharge summary"}
EMPTY_REASON = "http://terminology.hl7.org/CodeSystem/list-empty-reason"


@dataclass(frozen=True, slots=True)
class Section:
    key: str
    system: str
    code: str
    display: str
    title: str
    #: Where its entries come from (docs/packet.md prints this table).
    sources: str


SECTIONS: tuple[Section, ...] = (
    Section("encounter", LOINC, "8648-8", "Hospital course Narrative", "Encounter and responsible practitioner",
            "ADT PV1 (class, PV1-44/45 period, PV1-7 attending); source DocumentReference of the discharge summary"),
    Section("diagnoses", LOINC, "11535-2", "Hospital discharge Dx Narrative", "Diagnoses at discharge",
            "ADT DG1 (Encounter.diagnosis)"),
    Section("procedures", LOINC, "47519-4", "History of Procedures Document", "Procedures", "ADT PR1"),
    Section("allergies", LOINC, "48765-2", "Allergies and adverse reactions Document", "Allergies and intolerances",
            "ADT AL1; source AllergyIntolerance"),
    Section("results", LOINC, "30954-2", "Relevant diagnostic tests/laboratory data Narrative", "Results",
            "ADT OBX with a final, corrected or amended status"),
    Section("disposition", LOCAL_SECTION, "disposition", "Disposition and discharge location",
            "Disposition and discharge location", "ADT PV1-36 (disposition) and PV1-37 (discharged to location)"),
    Section("instructions", LOINC, "8653-8", "Hospital discharge instructions", "Instructions",
            "the follow-up tasks (who, what, by when); source DocumentReference of discharge instructions"),
    Section("medications", LOINC, "10183-2", "Hospital discharge medications Narrative", "Medications",
            "source MedicationRequest and MedicationStatement (an ADT carries none)"),
    Section("pending", LOCAL_SECTION, "pending", "Pending results and items", "Pending items",
            "ADT OBX with a preliminary status; source DiagnosticReport registered, partial or preliminary"),
    Section("problems", LOINC, "11450-4", "Problem list - Reported", "Problems", "source Condition"),
    Section("care-team", LOINC, "85847-2", "Patient Care team information", "Care team",
            "ADT PV1-7/8/9/17 practitioners, PD1-4 primary care, the owners of the follow-up tasks"),
    Section("plan", LOINC, "18776-5", "Plan of care note", "Plan of care",
            "the CarePlan carehub keeps for the discharge: its activities are the follow-up Tasks"),
)  # fmt: skip

BY_KEY = {s.key: s for s in SECTIONS}

#: HEDIS TRC "receipt of discharge information": each element and the section that carries it.
TRC_ELEMENTS: tuple[tuple[str, str], ...] = (
    ("the practitioner responsible for the patient's care during the inpatient stay", "encounter"),
    ("procedures or treatment provided", "procedures"),
    ("diagnoses at discharge", "diagnoses"),
    ("current medication list", "medications"),
    ("testing results, or documentation of pending tests or no tests pending", "results+pending"),
    ("instructions for patient care post-discharge", "instructions"),
)
