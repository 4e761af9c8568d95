"""Assemble the CareEvent: the routing-relevant summary of one converted message.

Everything here reads the message header and the resources already built;
no mapping decisions are made. ``attributes`` carries what routing and
consent need without parsing FHIR: PCP, payers, diagnoses, birth date,
discharge disposition, raw patient class, hospital service, location parts.
"""

from __future__ import annotations

from typing import Any

from carehub.adapters.hl7.header import Header
from carehub.adapters.hl7.tokenizer import Message, Segment
from carehub.core.records import CareEvent
from carehub.mappings import ids
from carehub.mappings.context import BuildContext, Resource
from carehub.mappings.events import Trigger
from carehub.mappings.transforms.datetimes import to_datetime, to_instant

V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def occurred_at(message: Message, header: Header) -> str:
    """EVN-6 (event occurred), else EVN-2 (recorded), else MSH-7, as ISO 8601."""
    evn = message.segment("EVN")
    candidates = [evn.get(6, 1), evn.get(2, 1)] if evn is not None else []
    candidates.append(header.timestamp)
    for raw in candidates:
        value = to_datetime(raw) if raw else None
        if value:
            return value
    return ""


def _identifiers(patient: Resource | None) -> list[dict[str, str]]:
    out = []
    for ident in (patient or {}).get("identifier", []):
        codings = ident.get("type", {}).get("coding", [])
        out.append(
            {
                "system": ident.get("system", ""),
                "value": ident.get("value", ""),
                "type": codings[0].get("code", "") if codings else "",
            }
        )
    return out


def _resolve(ctx: BuildContext, ref: dict[str, Any]) -> Resource | None:
    return ctx.resources.get(ref.get("reference", ""))


def _party(resource: Resource) -> dict[str, Any]:
    names = resource.get("name")
    name = (
        names
        if isinstance(names, str)
        else " ".join(
            [*(names[0].get("given", []) if names else []), names[0].get("family", "") if names else ""]
        ).strip()
    )
    identifiers = [{"system": i.get("system", ""), "value": i.get("value", "")} for i in resource.get("identifier", [])]
    return {"type": resource["resourceType"], "id": resource["id"], "name": name, "identifiers": identifiers}


def _pcp(ctx: BuildContext, patient: Resource | None) -> list[dict[str, Any]]:
    found = (_resolve(ctx, ref) for ref in (patient or {}).get("generalPractitioner", []))
    return [_party(r) for r in found if r is not None]


def _payers(ctx: BuildContext) -> list[dict[str, Any]]:
    out = []
    for key, coverage in ctx.resources.items():
        if not key.startswith("Coverage/"):
            continue
        payors = [_resolve(ctx, ref) for ref in coverage.get("payor", [])]
        plans = [c.get("value", "") for c in coverage.get("class", []) if c.get("value")]
        out.append(
            {
                "coverage_id": coverage["id"],
                "payors": [_party(p) for p in payors if p is not None],
                "plans": plans,
                "subscriber_id": coverage.get("subscriberId", ""),
            }
        )
    return out


def _diagnoses(ctx: BuildContext) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for key, condition in ctx.resources.items():
        if key.startswith("Condition/"):
            out.extend(
                {"system": c.get("system", ""), "code": c.get("code", "")}
                for c in condition.get("code", {}).get("coding", [])
            )
    return out


_LOCATION_PARTS = ("point_of_care", "room", "bed", "facility", "status", "type", "building", "floor")


def _location_parts(pv1: Segment | None, field: int = 3) -> dict[str, str]:
    if pv1 is None:
        return {}
    location = pv1.field(field)
    if not location.raw:
        return {}
    found = ((name, location.component(i + 1)) for i, name in enumerate(_LOCATION_PARTS))
    return {name: value for name, value in found if value}


def _codes(segment: Segment, field: int, position: str) -> list[dict[str, str]]:
    found = ((rep.component(1).strip(), rep.component(3).strip()) for rep in segment.repetitions(field))
    return [{"position": position, "code": code, "system": system} for code, system in found if code]


def source_labels(message: Message) -> list[dict[str, str]]:
    """What the sender says about the record's sensitivity: MSH-26 (security classification),
    MSH-27 (handling instructions), ARV-3/ARV-4 (access restrictions not being deleted), PV2-22."""
    found = _codes(message.msh, 26, "MSH-26") + _codes(message.msh, 27, "MSH-27")
    for arv in message.all("ARV"):
        if arv.get(2, 1).upper() != "D":
            found += _codes(arv, 3, "ARV-3") + _codes(arv, 4, "ARV-4")
    pv2 = message.segment("PV2")
    if pv2 is not None and pv2.get(22, 1).upper() == "Y":
        found.append({"position": "PV2-22", "code": "Y", "system": "HL70136"})
    return found


def attributes(ctx: BuildContext, message: Message, merges: list[dict[str, str]]) -> dict[str, Any]:
    pv1 = message.segment("PV1")
    patient = ctx.latest.get("Patient")
    encounter = ctx.latest.get("Encounter") or {}
    disposition = encounter.get("hospitalization", {}).get("dischargeDisposition", {}).get("coding", [])
    out: dict[str, Any] = {
        "pcp": _pcp(ctx, patient),
        "payers": _payers(ctx),
        "diagnoses": _diagnoses(ctx),
        "birth_date": (patient or {}).get("birthDate", ""),
        "discharge_disposition": disposition[0].get("code", "") if disposition else "",
        "patient_class": pv1.get(2, 1) if pv1 is not None else "",
        "hospital_service": pv1.get(10, 1) if pv1 is not None else "",
        "admission_type": pv1.get(4, 1) if pv1 is not None else "",
        "assigned_location": _location_parts(pv1),
        "prior_location": _location_parts(pv1, 6),
        "diagnosis_texts": [text for dg1 in message.all("DG1") if (text := dg1.get(4, 1).strip())],
        "source_labels": source_labels(message),
    }
    if merges:
        out["merged_from"] = [m["from"] for m in merges if m["into"] == ctx.patient_key]
        out["merges"] = merges
    return out


def source(header: Header, received_at: str | None) -> dict[str, str]:
    return {
        "control_id": header.control_id,
        "message_type": header.type_label,
        "sending_application": header.sending_application,
        "sending_facility": header.sending_facility,
        "version": header.version,
        "received_at": received_at or "",
    }


def location_text(pv1: Segment | None) -> str:
    if pv1 is None:
        return ""
    location = pv1.field(3)
    parts = [location.component(i) for i in (1, 2, 3, 4)]
    return "^".join(p for p in parts if p)


def encounter_class(encounter: Resource | None) -> str:
    coding = (encounter or {}).get("class", {})
    return str(coding.get("code", "")) if coding.get("system") == V3_ACT_CODE else ""


def build_event(
    ctx: BuildContext,
    message: Message,
    header: Header,
    trigger: Trigger,
    bundle: dict[str, Any],
    unmapped: list[str],
    received_at: str | None,
    merges: list[dict[str, str]],
    event_time: str | None = None,
) -> CareEvent:
    """``event_time``: ``occurred_at(message, header)`` when the caller has it already."""
    if event_time is None:
        event_time = occurred_at(message, header)
    encounter = ctx.latest.get("Encounter")
    patient = ctx.latest.get("Patient")
    return CareEvent(
        event_id=ids.event_id(header.sending_facility, header.control_id, trigger.kind),
        kind=trigger.kind,
        occurred_at=event_time or (to_instant(received_at or "") or received_at or ""),
        patient_key=ctx.patient_key,
        identifiers=_identifiers(patient),
        encounter_class=encounter_class(encounter),
        facility=header.sending_facility,
        source=source(header, received_at),
        bundle=bundle,
        patient_id=ctx.ids["Patient"],
        encounter_id=encounter["id"] if encounter is not None else None,
        location=location_text(message.segment("PV1")) if encounter is not None else "",
        trigger=trigger.code,
        labels=[],
        unmapped=unmapped,
        attributes=attributes(ctx, message, merges),
    )
