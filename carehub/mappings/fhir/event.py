"""Build the CareEvent for one source Encounter (pure).

Input: the Encounter as the source server has it, the resources routing needs
(its Patient, the Patient's Coverage, Practitioners/Organizations named as
general practitioner or payor, the Encounter's Locations), what was last seen
of the Encounter, and where it came from. Output: a :class:`FhirMapping` with
the CareEvent (None when the change is not an admit, discharge or transfer),
the new snapshot and the reason. Resource ids are carehub's deterministic ids
(``identity``), references are rewritten to them, and references to
resources not carried are dropped (their display is kept).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from carehub.core.errors import MappingError
from carehub.core.records import CareEvent
from carehub.mappings import ids
from carehub.mappings.codes import table
from carehub.mappings.fhir.identity import encounter_id, patient_key_of
from carehub.mappings.fhir.transition import EncounterSnapshot, Transition, snapshot_of, transition

Resource = dict[str, Any]
_KEEP_OUT = ("meta", "text", "contained")
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"


@dataclass(frozen=True, slots=True)
class FhirSource:
    """Where a notification came from: configured source, facility, and the event's coordinates."""

    name: str
    facility: str
    base_url: str
    subscription: str = ""
    event_number: int | None = None
    timestamp: str = ""
    received_at: str = ""


@dataclass(frozen=True, slots=True)
class FhirMapping:
    event: CareEvent | None
    snapshot: EncounterSnapshot
    transition: Transition
    issues: list[str] = field(default_factory=list)


def local_ref(reference: str) -> str:
    """``Type/id`` of a relative or absolute reference (history suffixes dropped)."""
    parts = [p for p in reference.split("/_history/")[0].split("/") if p]
    return "/".join(parts[-2:]) if len(parts) >= 2 else reference


def _refs(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [local_ref(value["reference"])] if isinstance(value.get("reference"), str) else []
        return found + [r for v in value.values() for r in _refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in _refs(v)]
    return []


def _rewrite(value: Any, new_refs: Mapping[str, str]) -> Any:
    if isinstance(value, list):
        return [_rewrite(v, new_refs) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: _rewrite(v, new_refs) for k, v in value.items() if k not in _KEEP_OUT}
    security = (value.get("meta") or {}).get("security") if isinstance(value.get("meta"), dict) else None
    if security:  # the source's security labels stay with the data (42CFRPart2, R, ...)
        out["meta"] = {"security": security}
    if isinstance(value.get("reference"), str):
        target = new_refs.get(local_ref(value["reference"]))
        if target is None:
            del out["reference"]
        else:
            out["reference"] = target
    return out


def _wanted(encounter: Resource, patient_ref: str, related: Mapping[str, Resource]) -> list[str]:
    """Refs of the related resources that go into the event, in a stable order."""
    patient = related.get(patient_ref, {})
    wanted = [patient_ref, *_refs(patient.get("generalPractitioner")), *_refs(encounter.get("location"))]
    wanted += [r for r in _refs(encounter.get("diagnosis")) if r.startswith("Condition/")]
    coverages = sorted(
        ref
        for ref, res in related.items()
        if ref.startswith("Coverage/")
        and local_ref(str((res.get("beneficiary") or {}).get("reference", ""))) == patient_ref
    )
    for ref in coverages:
        wanted += [ref, *_refs(related[ref].get("payor"))]
    return [r for r in dict.fromkeys(wanted) if r in related]


def _new_ids(
    encounter_ref: str, enc_id: str, pkey: str, wanted: list[str], related: Mapping[str, Resource]
) -> dict[str, str]:
    new = {encounter_ref: f"Encounter/{enc_id}"}
    for ref in wanted:
        kind = ref.split("/")[0]
        body = related[ref]
        new_id = ids.resource_id("Patient", pkey) if kind == "Patient" else ids.content_id(kind, _rewrite(body, {}))
        new[ref] = f"{kind}/{new_id}"
    return new


def _party(resource: Resource) -> dict[str, Any]:
    names = resource.get("name")
    if isinstance(names, list) and names:
        name = " ".join([*names[0].get("given", []), names[0].get("family", "")]).strip()
    else:
        name = str(names or "")
    idents = [{"system": i.get("system", ""), "value": i.get("value", "")} for i in resource.get("identifier") or []]
    return {"type": resource["resourceType"], "id": resource["id"], "name": name, "identifiers": idents}


def _attributes(patient: Resource, encounter: Resource, by_ref: Mapping[str, Resource]) -> dict[str, Any]:
    def resolve(refs: list[str]) -> list[Resource]:
        return [by_ref[r] for r in refs if r in by_ref]

    payers = [
        {
            "coverage_id": cov["id"],
            "payors": [_party(p) for p in resolve(_refs(cov.get("payor")))],
            "plans": [c.get("value", "") for c in cov.get("class") or [] if c.get("value")],
            "subscriber_id": cov.get("subscriberId", ""),
        }
        for ref, cov in by_ref.items()
        if ref.startswith("Coverage/")
    ]
    conditions = [by_ref[r] for r in _refs(encounter.get("diagnosis")) if r in by_ref]
    diagnoses = [
        {"system": c.get("system", ""), "code": c.get("code", "")}
        for condition in conditions
        for c in (condition.get("code") or {}).get("coding") or []
    ]
    service = ((encounter.get("serviceType") or {}).get("coding") or [{}])[0].get("code", "")
    klass = (encounter.get("class") or {}).get("code", "")
    classes = [k for k, c in table("v2-0004-class").entries.items() if c.code == klass and len(k) == 1]
    disposition = ((encounter.get("hospitalization") or {}).get("dischargeDisposition") or {}).get("coding") or [{}]
    return {
        "pcp": [_party(r) for r in resolve(_refs(patient.get("generalPractitioner")))],
        "payers": payers,
        "diagnoses": diagnoses,
        "birth_date": patient.get("birthDate", ""),
        "discharge_disposition": disposition[0].get("code", ""),
        "patient_class": classes[0] if classes else "",
        "hospital_service": service,
        "assigned_location": {},
        # Encounter.priority EM (v3 ActPriority emergency) is PV1-4 E: the LACE index's acuity
        "admission_type": "E" if _is_emergency(encounter) else "",
    }


def _is_emergency(encounter: Resource) -> bool:
    codings = (encounter.get("priority") or {}).get("coding") or []
    return any(c.get("code") == "EM" for c in codings if isinstance(c, dict))


def source_labels(resources: list[Resource]) -> list[dict[str, str]]:
    """The source's meta.security labels (read before ids and references are rewritten)."""
    found: dict[tuple[str, str, str], None] = {}
    for resource in resources:
        for label in (resource.get("meta") or {}).get("security") or []:
            system, code = str(label.get("system", "")), str(label.get("code", ""))
            position = "meta.security.confidentiality" if system == CONFIDENTIALITY else "meta.security"
            if code:
                found[(position, code, system)] = None
    return [{"position": p, "code": c, "system": s} for p, c, s in found]


def _occurred_at(kind: str, encounter: Resource, source: FhirSource) -> str:
    period = encounter.get("period") or {}
    own = period.get("start") if kind == "admit" else period.get("end") if kind == "discharge" else None
    return str(own or source.timestamp or source.received_at)


def _identifiers(patient: Resource) -> list[dict[str, str]]:
    out = []
    for i in patient.get("identifier") or []:
        codings = (i.get("type") or {}).get("coding") or [{}]
        out.append({"system": i.get("system", ""), "value": i.get("value", ""), "type": codings[0].get("code", "")})
    return out


def _location_text(encounter: Resource, by_ref: Mapping[str, Resource]) -> str:
    for item in encounter.get("location") or []:
        ref = (item.get("location") or {}).get("reference", "")
        if ref in by_ref:
            return str(by_ref[ref].get("name", ""))
    return ""


def _event_id(source: FhirSource, encounter_ref: str, kind: str, encounter: Resource) -> str:
    version = (encounter.get("meta") or {}).get("versionId") or (encounter.get("meta") or {}).get("lastUpdated") or ""
    return ids.resource_id("event", "fhir", f"{source.name}|{encounter_ref}|{kind}|{version}")


def map_encounter(
    encounter: Resource,
    related: Mapping[str, Resource],
    previous: EncounterSnapshot | None,
    source: FhirSource,
) -> FhirMapping:
    """The CareEvent for this state of the Encounter, given what was last seen of it."""
    if encounter.get("resourceType") != "Encounter" or not encounter.get("id"):
        raise MappingError("the focus is not an Encounter with an id")
    current = snapshot_of(encounter)
    step = transition(previous, current)
    if step.kind is None:
        return FhirMapping(None, current, step)
    encounter_ref = f"Encounter/{encounter['id']}"
    patient_ref = local_ref(str((encounter.get("subject") or {}).get("reference", "")))
    patient = related.get(patient_ref)
    if patient is None or not patient_ref.startswith("Patient/"):
        raise MappingError("the Encounter's subject Patient was not available")
    pkey = patient_key_of(patient)
    if pkey is None:
        raise MappingError("the Patient has no identifier to build a patient key from")
    enc_id, linked = encounter_id(encounter, pkey, source.facility, f"{source.name}|{encounter_ref}")
    wanted = _wanted(encounter, patient_ref, related)
    new_refs = _new_ids(encounter_ref, enc_id, pkey, wanted, related)
    copies = {new_refs[ref]: _with_id(_rewrite(related[ref], new_refs), new_refs[ref]) for ref in wanted}
    enc_copy = _with_id(_rewrite(encounter, new_refs), new_refs[encounter_ref])
    by_ref = {**copies, new_refs[encounter_ref]: enc_copy}
    new_patient = copies[new_refs[patient_ref]]
    event_id = _event_id(source, encounter_ref, step.kind, encounter)
    event = CareEvent(
        event_id=event_id,
        kind=step.kind,
        occurred_at=_occurred_at(step.kind, encounter, source),
        patient_key=pkey,
        identifiers=_identifiers(patient),
        encounter_class=current.class_code,
        facility=source.facility,
        source={
            "fhir_source": source.name,
            "subscription": source.subscription,
            "event_number": source.event_number,
            "message_type": f"FHIR Encounter {current.status}",
            "sending_facility": source.facility,
            "control_id": f"{source.subscription}#{source.event_number}" if source.event_number is not None else "",
            "received_at": source.received_at,
        },
        bundle=_bundle(by_ref, source, event_id),
        patient_id=new_patient["id"],
        encounter_id=enc_id,
        location=_location_text(enc_copy, by_ref),
        trigger=step.trigger,
        attributes={
            **_attributes(new_patient, enc_copy, by_ref),
            "transition": step.reason,
            "source_labels": source_labels([encounter, *(related[ref] for ref in wanted)]),
        },
    )
    issues = [] if linked else ["the Encounter has no identifier or start: it cannot be matched with an ADT visit"]
    return FhirMapping(event, current, step, issues)


def _with_id(resource: Resource, new_ref: str) -> Resource:
    return {**resource, "id": new_ref.split("/", 1)[1]}


def _bundle(by_ref: Mapping[str, Resource], source: FhirSource, event_id: str) -> Resource:
    return {
        "resourceType": "Bundle",
        "id": ids.resource_id("Bundle", "fhir-event", event_id),  # stable, as the HL7v2 path's bundle id is
        "type": "collection",
        "timestamp": source.timestamp or source.received_at,
        "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in by_ref.values()],
    }
