"""A FHIR R4 AuditEvent for every consent decision (permit, deny, redact)."""

from __future__ import annotations

import uuid

from core.records import JSONObject
from streams.consent.codes import ACT_REASON
from streams.consent.decide import DENY, PERMIT_REDACTED, ConsentDecision, Disclosure

_NS = uuid.UUID("0b7c6d4e-1f2a-4b3c-8d9e-5f6a7b8c9d0e")
DCM = "http://dicom.nema.org/resources/ontology/DCM"
AUDIT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"


def audit_event(
    decision: ConsentDecision, disclosure: Disclosure, *, event_id: str, patient_key: str, recorded: str,
    map_version: str, hub: str = "carehub",
) -> JSONObject:  # fmt: skip
    """The AuditEvent; its id is stable for (event, recipient, action) so replays do not double count."""
    outcome = "4" if decision.outcome == DENY else "0"
    details = [
        {"type": "decision", "valueString": decision.outcome},
        {"type": "rule", "valueString": decision.rule},
        {"type": "reason", "valueString": decision.reason},
        {"type": "map-version", "valueString": map_version},
        {"type": "action", "valueString": disclosure.action},
    ]
    entities: list[JSONObject] = [
        {"what": {"identifier": {"system": "urn:carehub:patient-key", "value": patient_key}},
         "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1"},
         "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1"}},
        {"what": {"identifier": {"system": "urn:carehub:event", "value": event_id}}, "detail": details},
    ]  # fmt: skip
    if decision.consent_id:
        entities.append({"what": {"reference": f"Consent/{decision.consent_id}"}})
    return {
        "resourceType": "AuditEvent",
        "id": str(uuid.uuid5(_NS, f"{event_id}|{disclosure.recipient_id}|{disclosure.action}")),
        "type": {"system": DCM, "code": "110106", "display": "Export"},
        "subtype": [{"system": AUDIT_TYPE, "code": "disclosure" if decision.discloses else "suppression"}],
        "action": "E",
        "recorded": recorded,
        "outcome": outcome,
        "outcomeDesc": decision.reason,
        "purposeOfEvent": [{"coding": [{"system": ACT_REASON, "code": disclosure.purpose}]}],
        "agent": [
            {
                "who": {"display": hub},
                "requestor": True,
                "type": {"coding": [{"system": DCM, "code": "110153", "display": "Source Role ID"}]},
            },
            {
                "who": {"identifier": {"system": "urn:carehub:recipient", "value": disclosure.recipient_id}},
                "requestor": False,
                "type": {"coding": [{"system": DCM, "code": "110152", "display": "Destination Role ID"}]},
            },
        ],  # fmt: skip
        "source": {"observer": {"display": hub}},
        "entity": entities,
        "extension": [
            {
                "url": "urn:carehub:fhir:StructureDefinition:redacted",
                "valueBoolean": decision.outcome == PERMIT_REDACTED,
            }
        ],  # fmt: skip
    }
