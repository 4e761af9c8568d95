"""Remove SUD data and Part 2 program identity from an event (pure).

Possible only when the program is an identified unit or service of a general
facility: then the unit's location, the service, SUD diagnoses and the Part 2
labels go, and what remains does not reveal that the patient has or had an
SUD. When the sender itself is the program, nothing can be removed that would
make the record safe, so redaction is refused.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from core.records import CareEvent, JSONObject
from streams.consent.codes import ACT_CODE, COUNSELING_NOTES, PART2, SUD, SUD_PREFIXES, coding

_SUD_LABELS = {PART2, SUD, COUNSELING_NOTES}


def redactable(event: CareEvent) -> bool:
    return event.attributes.get("part2_basis") != "facility"


def _is_sud(code: str, prefixes: tuple[str, ...]) -> bool:
    return code.upper().startswith(prefixes)


def _condition_codes(resource: JSONObject) -> list[str]:
    return [str(c.get("code", "")) for c in resource.get("code", {}).get("coding", [])]


def _strip_labels(resource: JSONObject) -> JSONObject:
    meta = dict(resource.get("meta", {}))
    kept = [s for s in meta.get("security", []) if s.get("code") not in _SUD_LABELS and s.get("code") != "R"]
    meta["security"] = [coding("http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "N", "normal"), *kept]
    return {**resource, "meta": meta}


def _points_to(value: Any, dropped: set[str]) -> bool:
    """A reference to a dropped resource, or an element (e.g. a diagnosis) built around one."""
    if not isinstance(value, dict):
        return False
    if value.get("reference") in dropped:
        return True
    return any(_points_to(v, dropped) for k, v in value.items() if k in ("condition", "location", "individual"))


def _prune(value: Any, dropped: set[str]) -> Any:
    """``value`` without any element that points at a dropped resource."""
    if isinstance(value, dict):
        return {k: _prune(v, dropped) for k, v in value.items() if not _points_to(v, dropped)}
    if isinstance(value, list):
        return [_prune(v, dropped) for v in value if not _points_to(v, dropped)]
    return value


def _clean_encounter(encounter: JSONObject, drop_location: bool) -> JSONObject:
    cleaned = {k: v for k, v in encounter.items() if v not in ([], {})}
    if drop_location:
        cleaned.pop("location", None)
        cleaned.pop("serviceType", None)
    return cleaned


def redact(event: CareEvent, sud_prefixes: tuple[str, ...] = SUD_PREFIXES) -> CareEvent:
    """The event without SUD conditions, program-unit locations/services and Part 2 labels."""
    if not redactable(event):
        raise ValueError("the sender is itself a Part 2 program: its records cannot be redacted")
    drop_location = event.attributes.get("part2_basis") in ("location", "service")
    resources = [e["resource"] for e in event.bundle.get("entry", []) if "resource" in e]
    dropped = {
        f"Condition/{r['id']}"
        for r in resources
        if r["resourceType"] == "Condition" and any(_is_sud(c, sud_prefixes) for c in _condition_codes(r))
    }
    if drop_location:
        dropped |= {f"Location/{r['id']}" for r in resources if r["resourceType"] == "Location"}
    kept: list[JSONObject] = []
    for r in resources:
        if f"{r['resourceType']}/{r['id']}" in dropped:
            continue
        pruned = _prune(r, dropped)
        if r["resourceType"] == "Encounter":
            pruned = _clean_encounter(pruned, drop_location)
        kept.append(_strip_labels(pruned))
    bundle = {**event.bundle, "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in kept]}
    diagnoses = [d for d in event.attributes.get("diagnoses", []) if not _is_sud(str(d.get("code", "")), sud_prefixes)]
    attributes = {k: v for k, v in event.attributes.items() if k not in ("part2_program", "label_reasons")}
    attributes.update(diagnoses=diagnoses, redacted=True, hospital_service="" if drop_location else
                      attributes.get("hospital_service", ""))  # fmt: skip
    labels = [coding(ACT_CODE, "NORDSCLCD", "no redisclosure without consent directive")]
    return replace(event, bundle=bundle, attributes=attributes, labels=labels,
                   location="" if drop_location else event.location)  # fmt: skip
