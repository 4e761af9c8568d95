"""A FHIR R4 AuditEvent for every consent decision (permit, deny, redact) and every §2.51 attestation.

Ids are per delivery and per decision: ``(delivery id, phase, attempt, time)``.
The two TCM tasks of one discharge are two deliveries, so two rows; a
re-decision on the same event (a replay, a retry re-checked at send time) is
a new row; only the same record read twice from Kafka collapses into one.
"""

from __future__ import annotations

from carehub.core.records import JSONObject
from carehub.core.uuids import Namespace
from carehub.streams.consent.codes import ACT_REASON
from carehub.streams.consent.decide import DENY, PERMIT_REDACTED, ConsentDecision, Disclosure
from carehub.streams.consent.emergency import Attestation

_NS = Namespace("0b7c6d4e-1f2a-4b3c-8d9e-5f6a7b8c9d0e")
DCM = "http://dicom.nema.org/resources/ontology/DCM"
AUDIT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
ATTESTATION_SYSTEM = "urn:carehub:part2-emergency-attestation"


#: When the decision was taken: when the route stage planned the delivery, or just before a send.
PLAN = "plan"
SEND = "send"
EMERGENCY_OVERRIDE = {"system": DCM, "code": "110127", "display": "Emergency Override Started"}


def audit_id(delivery_id: str, phase: str, attempt: int, recorded: str) -> str:
    return _NS.id(f"{delivery_id}|{phase}|{attempt}|{recorded}")


def audit_event(
    decision: ConsentDecision, disclosure: Disclosure, *, event_id: str, patient_key: str, recorded: str,
    map_version: str, delivery_id: str, phase: str = PLAN, attempt: int = 0, hub: str = "carehub",
) -> JSONObject:  # fmt: skip
    """The AuditEvent of one decision on one delivery (planned, or about to be sent)."""
    outcome = "4" if decision.outcome == DENY else "0"
    details = [
        {"type": "delivery", "valueString": delivery_id},
        {"type": "phase", "valueString": phase},
        {"type": "attempt", "valueString": str(attempt)},
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
    if decision.attestation:
        entities.append({"what": {"identifier": {"system": ATTESTATION_SYSTEM, "value": decision.attestation}}})
    return {
        "resourceType": "AuditEvent",
        "id": audit_id(delivery_id, phase, attempt, recorded),
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


def attestation_audit(attestation: Attestation, hub: str = "carehub") -> JSONObject:
    """The AuditEvent of a §2.51 attestation: who attested, why, for whom, to whom, for how long."""
    details = [
        {"type": "decision", "valueString": "emergency-attested"},
        {"type": "rule", "valueString": "emergency-2.51"},
        {"type": "reason", "valueString": attestation.reason},
        {"type": "period", "valueString": f"{attestation.start}/{attestation.end}"},
        {"type": "action", "valueString": "attest"},
        {"type": "phase", "valueString": "attest"},
        {"type": "delivery", "valueString": ""},
    ]
    return {
        "resourceType": "AuditEvent",
        "id": _NS.id(f"attestation|{attestation.id}|{attestation.recorded}"),
        "type": EMERGENCY_OVERRIDE,
        "action": "C",
        "recorded": attestation.recorded,
        "outcome": "0",
        "outcomeDesc": f"§2.51 emergency attested by {attestation.attested_by}: {attestation.reason}",
        "purposeOfEvent": [{"coding": [{"system": ACT_REASON, "code": "ETREAT"}]}],
        "agent": [
            {
                "who": {"display": attestation.attested_by},
                "requestor": True,
                **({"altId": attestation.recorded_by} if attestation.recorded_by else {}),
            },
            {
                "who": {"identifier": {"system": "urn:carehub:recipient", "value": attestation.recipient_id}},
                "requestor": False,
            },
        ],  # fmt: skip
        "source": {"observer": {"display": hub}},
        "entity": [
            {
                "what": {"identifier": {"system": "urn:carehub:patient-key", "value": attestation.patient_key}},
                "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1"},
                "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1"},
            },
            {"what": {"identifier": {"system": ATTESTATION_SYSTEM, "value": attestation.id}}, "detail": details},
        ],  # fmt: skip
    }
