"""Part 2 detection and DS4P security labels (pure).

A record is Part 2 data when it comes from a registered Part 2 program (by
sending facility, unit/location or hospital service). An SUD diagnosis from
a general facility is labelled SUD (sensitive) but is HIPAA PHI, not Part 2.
Counseling-note data is labelled PSYTHPN and never flows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from core.records import CareEvent, JSONObject
from streams.consent.codes import (
    ACT_CODE,
    CONFIDENTIALITY,
    COUNSELING_NOTES,
    PART2,
    SUD,
    SUD_PREFIXES,
    coding,
    restricted_with_basis,
)


@dataclass(frozen=True, slots=True)
class Program:
    id: str
    name: str
    facilities: tuple[str, ...] = ()
    locations: tuple[str, ...] = ()
    services: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Registry:
    programs: tuple[Program, ...]
    sud_prefixes: tuple[str, ...] = SUD_PREFIXES
    sud_codes: frozenset[str] = frozenset()
    counseling_codes: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Detection:
    part2: bool
    sud: bool
    counseling_notes: bool
    program_id: str
    reasons: tuple[str, ...]
    #: "facility" (the sender is the program: nothing can be redacted away),
    #: "location" or "service" (an identified unit: its identity can be removed), or "".
    basis: str = ""


def _matches(value: str, accepted: Iterable[str]) -> bool:
    folded = value.casefold()
    return bool(folded) and any(folded == a.casefold() for a in accepted)


def _program_for(event: CareEvent, registry: Registry) -> tuple[Program | None, str, str]:
    service = str(event.attributes.get("hospital_service", ""))
    for program in registry.programs:
        if _matches(event.facility, program.facilities):
            return program, "facility", f"sending facility {event.facility} is Part 2 program {program.id}"
        if _matches(event.location, program.locations) or any(
            _matches(part, program.locations) for part in event.location.split("^")
        ):
            return program, "location", f"location is a unit of Part 2 program {program.id}"
        if _matches(service, program.services):
            return program, "service", f"hospital service {service} belongs to Part 2 program {program.id}"
    return None, "", ""


def _diagnosis_codes(event: CareEvent) -> list[str]:
    found = event.attributes.get("diagnoses", [])
    return [str(d.get("code", "")) for d in found if isinstance(d, dict)]


def detect(event: CareEvent, registry: Registry) -> Detection:
    program, basis, why = _program_for(event, registry)
    reasons = [why] if why else []
    codes = _diagnosis_codes(event)
    sud = [c for c in codes if c.upper().startswith(registry.sud_prefixes) or c in registry.sud_codes]
    if sud:
        reasons.append(f"SUD diagnosis {', '.join(sorted(set(sud)))}")
    notes = [c for c in codes if c in registry.counseling_codes]
    if notes:
        reasons.append("counseling-note data present")
    return Detection(program is not None, bool(sud) or program is not None, bool(notes),
                     program.id if program else "", tuple(reasons), basis)  # fmt: skip


def security_labels(detection: Detection) -> list[JSONObject]:
    """The labels for CareEvent.labels and meta.security (exactly one confidentiality code)."""
    if not (detection.part2 or detection.sud or detection.counseling_notes):
        return []
    confidentiality = restricted_with_basis() if detection.part2 else coding(CONFIDENTIALITY, "R", "restricted")
    labels: list[JSONObject] = [confidentiality]
    if detection.part2:
        labels.append(coding(ACT_CODE, PART2, "42 CFR Part2"))
    if detection.sud:
        labels.append(coding(ACT_CODE, SUD, "substance use disorder information sensitivity"))
    if detection.counseling_notes:
        labels.append(coding(ACT_CODE, COUNSELING_NOTES, "psychotherapy note information sensitivity"))
    return labels


def _label_resource(resource: JSONObject, labels: list[JSONObject]) -> JSONObject:
    meta = dict(resource.get("meta", {}))
    present = [s for s in meta.get("security", []) if s.get("system") != CONFIDENTIALITY]
    known = {(s.get("system"), s.get("code")) for s in present}
    meta["security"] = [*present, *(label for label in labels if (label["system"], label["code"]) not in known)]
    return {**resource, "meta": meta}


def apply_labels(event: CareEvent, registry: Registry) -> CareEvent:
    """The event with labels and, on every resource of its bundle, meta.security."""
    detection = detect(event, registry)
    labels = security_labels(detection)
    if not labels:
        return event
    bundle: dict[str, Any] = dict(event.bundle)
    bundle["entry"] = [
        {**entry, "resource": _label_resource(entry["resource"], labels)} if "resource" in entry else entry
        for entry in event.bundle.get("entry", [])
    ]
    attributes = {
        **event.attributes,
        "part2_program": detection.program_id,
        "part2_basis": detection.basis,
        "label_reasons": list(detection.reasons),
    }
    return replace(event, labels=labels, bundle=bundle, attributes=attributes)


def has_label(labels: Iterable[JSONObject], code: str) -> bool:
    return any(label.get("code") == code for label in labels)
