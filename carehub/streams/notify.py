"""Build Da Vinci Unsolicited Notification Bundles from a CareEvent (pure).

Follows hl7.fhir.us.davinci-alerts STU1.1 as an intermediary (standards.md §1):
a new Bundle and MessageHeader, the hub as ``sender`` (an Organization in the
Bundle), the recipient as ``destination``, ``focus`` on the Encounter, every
reference resolving inside the Bundle, and a Provenance naming the original
sender as author and the hub as assembler (the content was converted).
"""

from __future__ import annotations

import functools
import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from carehub.core.memo import IdentityMemo
from carehub.core.records import CareEvent, JSONObject
from carehub.core.uuids import Namespace

DV = "http://hl7.org/fhir/us/davinci-alerts"
#: The hub's risk-score code system (streams.risk; kept here so notify does not import the scorer).
RISK_SYSTEM = "urn:carehub:risk"
EVENT_SYSTEM = f"{DV}/CodeSystem/notification-event"
V2_EVENT_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0003"
PROVENANCE_AGENT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
US_CORE_AGENT = "http://hl7.org/fhir/us/core/CodeSystem/us-core-provenance-participant-type"
_NS = Namespace("6f2b3c0e-9a57-4c1e-9d7a-2b1f0c3d4e5a")

#: CareEvent kind -> (Da Vinci event code, MessageHeader profile stem)
_EVENT_CODES: dict[str, tuple[str, str]] = {
    "admit": ("notification-admit", "admit"),
    "discharge": ("notification-discharge", "discharge"),
    "transfer": ("notification-transfer", "transfer"),
}


@dataclass(frozen=True, slots=True)
class Hub:
    """Who the hub is, as it names itself in notifications."""

    base_url: str
    name: str = "carehub"

    @property
    def organization_id(self) -> str:
        return _hub_organization_id(self.base_url)


@functools.cache
def _hub_organization_id(base_url: str) -> str:
    return _NS.id(f"hub|{base_url}")


def event_coding(event: CareEvent) -> JSONObject:
    """The MessageHeader.eventCoding for an event kind.

    A04 (register) is an admit when the patient class is emergency, otherwise an
    outpatient visit. Kinds the IG has no code for keep their v2 trigger code
    (the binding is extensible).
    """
    if event.kind == "register":
        code = "notification-admit" if event.encounter_class == "EMER" else "notification-outpatient-visit"
        return {"system": EVENT_SYSTEM, "code": code}
    if event.kind in _EVENT_CODES:
        return {"system": EVENT_SYSTEM, "code": _EVENT_CODES[event.kind][0]}
    return {"system": V2_EVENT_SYSTEM, "code": event.trigger or "A08"}


def _profile(event: CareEvent) -> str:
    stem = _EVENT_CODES.get(event.kind, ("", "notifications"))[1]
    name = f"{stem}-notification-messageheader" if stem != "notifications" else "notifications-messageheader"
    return f"{DV}/StructureDefinition/{name}"


def resources_by_ref(bundle: JSONObject) -> dict[str, JSONObject]:
    found: dict[str, JSONObject] = {}
    for entry in bundle.get("entry", []):
        resource = entry.get("resource")
        if isinstance(resource, dict) and "id" in resource:
            found[f"{resource['resourceType']}/{resource['id']}"] = resource
    return found


_REFERENCE = re.compile(rb'"reference":"((?:[^"\\]|\\.)*)"')
#: The references of each resource scanned, while it lives (core.memo): every notification and packet of an
#: event walks the same resources of its bundle.
_FOUND: IdentityMemo[list[str]] = IdentityMemo()


def _scan(value: Any) -> list[str]:
    found = _REFERENCE.findall(orjson.dumps(value))
    return [str(orjson.loads(b'"' + m + b'"')) if b"\\" in m else m.decode() for m in found]


def references(value: Any) -> list[str]:
    """Every ``reference`` string inside ``value`` (a list to read, not to change).

    Found in the serialized form (orjson + one regex run in C) rather than by a
    recursive Python walk: this runs for every planned notification; a resource
    is scanned once while it lives.
    """
    return _FOUND.value(value, lambda: _scan(value))


def closure(
    roots: list[str], available: dict[str, JSONObject], known: Mapping[str, list[str]] | None = None
) -> list[JSONObject]:
    """The root resources and everything they reference, transitively, in order.

    ``known``: the references of some resources, already found (``references`` of each), so a resource made
    anew per recipient around shared parts (a packet's Composition) is not serialized again to scan it."""
    ordered: list[str] = []
    seen: set[str] = set()
    pending = deque(r for r in roots if r in available)
    while pending:
        ref = pending.popleft()
        if ref in seen:
            continue
        seen.add(ref)
        ordered.append(ref)
        found = known.get(ref) if known is not None else None
        found = references(available[ref]) if found is None else found
        pending.extend(r for r in found if r in available and r not in seen)
    return [available[r] for r in ordered]


#: The resources a notification carries from its event (the focus, the patient, the hub's risk scores,
#: and what they reference): the same for every recipient of one event, found once (for the last 64 events:
#: the recipients of an event are planned one after another, and an event holds its whole bundle).
_CONTENT: IdentityMemo[list[JSONObject]] = IdentityMemo(limit=64)


def _notified(event: CareEvent, focus: str) -> list[JSONObject]:
    available = resources_by_ref(event.bundle)
    risk = [ref for ref, r in available.items() if ref.startswith("Observation/") and _is_risk(r)]
    return closure([focus, f"Patient/{event.patient_id}", *risk], available)


def entry(base: str, resource: JSONObject) -> JSONObject:
    return {"fullUrl": f"{base}/{resource['resourceType']}/{resource['id']}", "resource": resource}


def _is_risk(resource: JSONObject) -> bool:
    """The hub's own risk scores (the LACE index at discharge, streams.risk) travel with the notification."""
    return any(c.get("system") == RISK_SYSTEM for c in resource.get("code", {}).get("coding", []))


def organization(org_id: str, name: str) -> JSONObject:
    return {"resourceType": "Organization", "id": org_id, "active": True, "name": name}


def notification_bundle(
    event: CareEvent, *, hub: Hub, destination: str, recipient_name: str, key: str, timestamp: str
) -> JSONObject:
    """A Da Vinci notification Bundle for one recipient.

    ``key`` (the delivery's idempotency key) seeds the Bundle and MessageHeader
    ids, so a rebuilt bundle for the same delivery is identical.
    """
    focus = f"Encounter/{event.encounter_id}" if event.encounter_id else f"Patient/{event.patient_id}"
    content = _CONTENT.value(event, lambda: _notified(event, focus))
    header_id = _NS.id(f"header|{key}")
    source_org_id = _NS.id(f"facility|{event.facility}")
    hub_org = organization(hub.organization_id, hub.name)
    source_org = organization(source_org_id, event.facility or "unknown sender")
    header: JSONObject = {
        "resourceType": "MessageHeader",
        "id": header_id,
        "meta": {"profile": [_profile(event)]},
        "eventCoding": event_coding(event),
        "destination": [{"name": recipient_name, "endpoint": destination}],
        "sender": {"reference": f"Organization/{hub_org['id']}"},
        "source": {"name": hub.name, "endpoint": hub.base_url},
        "focus": [{"reference": focus}],
    }
    provenance: JSONObject = {
        "resourceType": "Provenance",
        "id": _NS.id(f"provenance|{key}"),
        "target": [{"reference": f"MessageHeader/{header_id}"}],
        "recorded": timestamp,
        "agent": [
            {
                "type": {"coding": [{"system": PROVENANCE_AGENT, "code": "author"}]},
                "who": {"reference": f"Organization/{source_org_id}"},
            },
            {
                "type": {"coding": [{"system": US_CORE_AGENT, "code": "assembler"}]},
                "who": {"reference": f"Organization/{hub_org['id']}"},
            },
        ],
    }
    resources = [header, *content, hub_org, source_org, provenance]
    unique = list({f"{r['resourceType']}/{r['id']}": r for r in resources}.values())
    return {
        "resourceType": "Bundle",
        "id": _NS.id(f"bundle|{key}"),
        "meta": {"profile": [f"{DV}/StructureDefinition/notifications-bundle"]},
        "type": "message",
        "timestamp": timestamp,
        "entry": [entry(hub.base_url, r) for r in unique],
    }
