"""Redaction by allow-list: a redacted event carries only what the policy lists (pure).

Possible only when the Part 2 status comes from an identified unit or
service of a general facility, or from an episode rule: then the event keeps
the resources and elements of ``AllowList`` (by default the patient's
demographics, the encounter's status, class and period, who pays), reachable
from the Patient and the Encounter; any code of the SUD value sets and any
text matching the SUD patterns are removed from what is kept; the sending
facility, location, source metadata and raw HL7 are gone. Labels stay
confidentiality R with NORDSCLCD (no redisclosure without consent), without
the Part 2 basis, which would itself disclose. When the sender itself is the
program (or labels or restricts the record), redaction is refused.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from carehub.core.records import CareEvent, JSONObject
from carehub.streams.consent.allowlist import DEFAULT_ALLOW_LIST, AllowList
from carehub.streams.consent.codes import ACT_CODE, CONFIDENTIALITY, coding
from carehub.streams.consent.labels import REDACTABLE_BASES, Registry
from carehub.streams.consent.positions import resource_findings

DEFAULT_REGISTRY = Registry(programs=())
_ROOTS = ("Patient", "Encounter")


def redactable(event: CareEvent) -> bool:
    return event.attributes.get("part2_basis", "") in REDACTABLE_BASES


def redacted_labels() -> list[JSONObject]:
    return [
        coding(CONFIDENTIALITY, "R", "restricted"),
        coding(ACT_CODE, "NORDSCLCD", "no redisclosure without consent directive"),
    ]


def _refs(value: Any) -> set[str]:
    if isinstance(value, dict):
        own = {value["reference"]} if isinstance(value.get("reference"), str) else set()
        return own.union(*(_refs(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_refs(v) for v in value))
    return set()


def _pick(resource: JSONObject, elements: tuple[str, ...]) -> JSONObject:
    picked = {k: resource[k] for k in elements if k in resource}
    return {"resourceType": resource["resourceType"], "id": resource["id"], **picked}


def _sud(value: JSONObject, registry: Registry) -> bool:
    probe = {"resourceType": "Probe", "value": value if "coding" in value else {"coding": [value], **value}}
    return bool(resource_findings(probe, registry.sud_codes, registry.sud_extra_codes, registry.sud_text))


def _scrub(value: Any, kept: set[str], registry: Registry) -> Any:
    """``value`` without SUD codes/text and without references to resources not kept (None: drop it)."""
    if isinstance(value, dict):
        if isinstance(value.get("reference"), str) and value["reference"] not in kept:
            return None
        if ("coding" in value or "text" in value or "code" in value) and _sud(value, registry):
            return None
        out = {k: v for k, v in ((k, _scrub(v, kept, registry)) for k, v in value.items()) if v not in (None, [], {})}
        return out or None
    if isinstance(value, list):
        items = [v for v in (_scrub(v, kept, registry) for v in value) if v not in (None, [], {})]
        return items or None
    if isinstance(value, str) and registry.sud_text and any(p.search(value) for p in registry.sud_text):
        return None
    return value


def _kept(resources: dict[str, JSONObject], allow: AllowList) -> dict[str, JSONObject]:
    """Allow-listed resources reachable from the roots (forward through kept elements, or pointing at a root)."""
    picked = {ref: _pick(r, allow.resources[r["resourceType"]]) for ref, r in resources.items()
              if r["resourceType"] in allow.resources}  # fmt: skip
    kept = {ref for ref in picked if ref.split("/")[0] in _ROOTS}
    grown = True
    while grown:
        reached = set().union(*(_refs(picked[ref]) for ref in kept)) & picked.keys()
        pointing = {ref for ref, r in picked.items() if _refs(r) & kept and ref.split("/")[0] not in _ROOTS}
        grown = not (reached | pointing) <= kept
        kept |= reached | pointing
    return {ref: picked[ref] for ref in kept}


def redact(event: CareEvent, allow: AllowList = DEFAULT_ALLOW_LIST, registry: Registry = DEFAULT_REGISTRY) -> CareEvent:
    """The event as a redacted disclosure may carry it: only what ``allow`` lists, no SUD codes or text."""
    if not redactable(event):
        raise ValueError("the Part 2 status comes from the sender itself: its records cannot be redacted")
    resources = {f"{r['resourceType']}/{r['id']}": r for e in event.bundle.get("entry", []) if (r := e.get("resource"))}
    kept = _kept(resources, allow)
    labels = redacted_labels()
    entries = []
    for resource in kept.values():
        clean = _scrub(resource, set(kept), registry) or {}
        clean = {**clean, "resourceType": resource["resourceType"], "id": resource["id"], "meta": {"security": labels}}
        entries.append({"fullUrl": f"urn:uuid:{resource['id']}", "resource": clean})
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    if "timestamp" in event.bundle:
        bundle["timestamp"] = event.bundle["timestamp"]
    attributes = {k: event.attributes[k] for k in allow.attributes if k in event.attributes}
    attributes = _scrub(attributes, set(kept), registry) or {}
    encounter_kept = f"Encounter/{event.encounter_id}" in kept
    return replace(
        event, bundle=bundle, labels=labels, facility="", location="", source={}, source_hl7="", unmapped=[],
        attributes={**attributes, "redacted": True}, encounter_id=event.encounter_id if encounter_kept else None,
    )  # fmt: skip
