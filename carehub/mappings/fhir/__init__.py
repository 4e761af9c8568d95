"""FHIR R4 Encounter (+ Patient, Coverage, Practitioner, Location) -> CareEvent (pure).

The counterpart of the HL7v2 maps for sources that announce visits through
FHIR Subscriptions: the same event kinds (``transition``), the same patient
key and the same deterministic resource ids (``identity``), so the same visit
arriving by ADT and by FHIR is recognisably the same (``event``).
"""

from carehub.mappings.fhir.event import FhirMapping, FhirSource, map_encounter
from carehub.mappings.fhir.transition import EncounterSnapshot, Transition, snapshot_of, transition

__all__ = [
    "EncounterSnapshot",
    "FhirMapping",
    "FhirSource",
    "Transition",
    "map_encounter",
    "snapshot_of",
    "transition",
]
