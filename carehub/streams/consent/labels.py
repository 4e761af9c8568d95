"""Part 2 detection and DS4P security labels (pure).

A record is Part 2 data when it comes from a registered Part 2 program (by
sending facility MSH-4, unit/location PV1-3, prior location PV1-6 — a
transfer out of the unit — or hospital service PV1-10), when the sender
labels it so (42CFRPart2 in MSH-27, ARV or FHIR ``meta.security``), when
the sender restricts it (PV2-22 visit protection, ARV, confidentiality R/V in
MSH-26 or ``meta.security``) and policy treats sender restrictions as Part 2,
or when it inherits the status from earlier events (``streams.consent.sticky``).
An SUD code or text (``streams.consent.positions``) from a general facility is
labelled SUD (sensitive) but is HIPAA PHI, not Part 2. Counseling-note data is
labelled PSYTHPN and never flows. Labelling is idempotent: an event's own
labels and basis are read back, so applying twice changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from carehub.core.records import CareEvent, JSONObject
from carehub.streams.consent.codes import (
    ACT_CODE,
    AUTHORITY_PREFIX,
    CONFIDENTIALITY,
    COUNSELING_NOTES,
    PART2,
    SUD,
    SUD_SENSITIVITY,
    coding,
    restricted_with_basis,
)
from carehub.streams.consent.positions import event_findings
from carehub.streams.consent.sticky import Prior
from carehub.streams.consent.valueset import ValueSet, builtin_sud

#: Where a Part 2 status came from; only an identified unit, service or an episode rule can be redacted away.
REDACTABLE_BASES = frozenset({"location", "service", "episode"})


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
    #: Codes (with their systems) that reveal SUD; default: the shipped C2S-style set.
    sud_codes: ValueSet = field(default_factory=builtin_sud)
    #: Extra codes that reveal SUD whatever their system.
    sud_extra_codes: frozenset[str] = frozenset()
    sud_text: tuple[re.Pattern[str], ...] = ()
    counseling_codes: frozenset[str] = frozenset()
    #: "part2": a sender's restriction (PV2-22, ARV, confidentiality R/V) is treated as Part 2; "label": R only.
    sender_restrictions: str = "part2"
    #: An ED visit of a patient with an open program episode is Part 2.
    ed_of_open_episode: bool = True
    #: The codes detection looks for whatever their system: the extra SUD codes and the counseling codes.
    any_system_codes: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:  # one set for the registry's life (detection's results are memoized by it)
        object.__setattr__(self, "any_system_codes", self.sud_extra_codes | self.counseling_codes)


@dataclass(frozen=True, slots=True)
class Detection:
    part2: bool
    sud: bool
    counseling_notes: bool
    program_id: str
    reasons: tuple[str, ...]
    #: "facility" (the sender is the program: nothing can be redacted away), "sender" (the sender
    #: labels or restricts it), "location" or "service" (an identified unit: its identity can be
    #: removed), "episode" (an ED visit during an open program episode), or "".
    basis: str = ""
    #: The sender restricted the record (PV2-22, ARV, MSH-26/meta.security R or V).
    restricted: bool = False


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


def _program_identifier(event: CareEvent, registry: Registry) -> tuple[Program | None, str]:
    """A merge of (MRG-1), or an identifier assigned by, a program facility: the identifier itself discloses."""
    merged = [str(k).split("|", 1)[0] for k in event.attributes.get("merged_from", [])]
    own = [str(i.get("system", "")).removeprefix(AUTHORITY_PREFIX) for i in event.identifiers]
    for program in registry.programs:
        if any(_matches(a, program.facilities) for a in merged):
            return program, f"merges a patient record of Part 2 program {program.id} (MRG-1)"
        if any(_matches(a, program.facilities) for a in own):
            return program, f"carries a patient identifier assigned by Part 2 program {program.id}"
    return None, ""


def _prior_location(event: CareEvent, registry: Registry) -> tuple[Program | None, str]:
    prior = event.attributes.get("prior_location") or {}
    unit = str(prior.get("point_of_care", "")) if isinstance(prior, dict) else ""
    program = next((p for p in registry.programs if _matches(unit, p.locations)), None)
    return program, f"transfer out of a unit of Part 2 program {program.id} (PV1-6)" if program else ""


_CONFIDENTIAL = frozenset({"R", "V"})


def _sender_says(event: CareEvent) -> list[tuple[str, str]]:
    """(position, code) of what the sender said (``source_labels``: MSH-26/27, ARV, PV2-22, the FHIR
    source's meta.security, read at intake) and of the event's own earlier labels."""
    found = [(str(x.get("position", "")), str(x.get("code", ""))) for x in event.attributes.get("source_labels", [])]
    found += [("labels", str(label.get("code", ""))) for label in event.labels]
    return found


def _restriction(position: str, code: str) -> bool:
    if position == "PV2-22":
        return code == "Y"
    if position.startswith("ARV"):
        return code.upper() != "NO"
    return code in _CONFIDENTIAL and position in ("MSH-26", "meta.security.confidentiality")


def detect(event: CareEvent, registry: Registry, prior: Prior | None = None) -> Detection:
    program, basis, why = _program_for(event, registry)
    if program is None:
        program, why = _program_identifier(event, registry)
        basis = "facility" if program else ""
    if program is None:
        program, why = _prior_location(event, registry)
        basis = "location" if program else ""
    reasons = [why] if why else []
    program_id = program.id if program else ""
    said = _sender_says(event)
    earlier = ("labels", PART2) in said
    if not program_id and earlier and event.attributes.get("part2_program"):
        program_id, basis = str(event.attributes["part2_program"]), str(event.attributes.get("part2_basis", ""))
    if not program_id and prior is not None:
        program_id, basis = prior.program_id, prior.basis
        reasons.append(prior.reason)
    labelled = sorted({pos for pos, code in said if code == PART2 and pos != "labels"})
    restricted = sorted({pos for pos, code in said if _restriction(pos, code)})
    if labelled:
        reasons.append(f"the sender labels it 42CFRPart2 ({', '.join(labelled)})")
    if restricted:
        reasons.append(f"the sender restricts it ({', '.join(restricted)})")
    part2 = bool(program_id or labelled or earlier or (restricted and registry.sender_restrictions == "part2"))
    if part2 and not program_id:
        basis = str(event.attributes.get("part2_basis") or "sender") if earlier else "sender"
    findings = event_findings(event, registry.sud_codes, registry.any_system_codes, registry.sud_text)
    sud_codes = sorted({f.code for f in findings if f.kind == "code" and f.code not in registry.counseling_codes})
    if sud_codes:
        reasons.append(f"SUD code {', '.join(sud_codes)}")
    texts = sorted({f.position for f in findings if f.kind == "text"})
    if texts:
        reasons.append(f"SUD text at {', '.join(texts)}")
    sensitive = any(code in SUD_SENSITIVITY for _, code in said)
    notes = any(f.code in registry.counseling_codes for f in findings) or ("labels", COUNSELING_NOTES) in said
    if notes:
        reasons.append("counseling-note data present")
    sud = part2 or bool(sud_codes or texts or sensitive)
    return Detection(part2, sud, notes, program_id, tuple(reasons), basis, restricted=bool(restricted))


def security_labels(detection: Detection) -> list[JSONObject]:
    """The labels for CareEvent.labels and meta.security (exactly one confidentiality code)."""
    if not (detection.part2 or detection.sud or detection.counseling_notes or detection.restricted):
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
    ours = {(label["system"], label["code"]) for label in labels}
    kept = [
        s
        for s in meta.get("security", [])
        if s.get("system") != CONFIDENTIALITY and (s.get("system"), s.get("code")) not in ours
    ]
    meta["security"] = [*labels, *kept]
    return {**resource, "meta": meta}


def apply_labels(event: CareEvent, registry: Registry, prior: Prior | None = None) -> CareEvent:
    """The event with labels and, on every resource of its bundle, meta.security."""
    detection = detect(event, registry, prior)
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
