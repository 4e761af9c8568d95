"""Resolve an action's target to recipients, saying how (pure).

``attributed:pcp`` looks at message content first (PD1-4 NPI or practice id
against the directory's identifiers), ``attributed:payer`` at IN1 (payer and
plan ids); both then, like ``attributed:care-manager`` and
``attributed:pharmacy``, at the rosters. ``service:<category>`` selects the
CBOs offering that category; ``service:sdoh`` does so for every category of
the event's SDOH diagnoses. What cannot be resolved is reported, never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from carehub.core.records import CareEvent
from carehub.streams.routing.match import diagnosis_codes, payer_ids, pcp_ids
from carehub.streams.routing.model import LOGISTICS_DESK, Recipient, RoutingMap
from carehub.streams.routing.rosters import member_key
from carehub.streams.routing.sdoh import categories


@dataclass(frozen=True, slots=True)
class Resolution:
    recipient: Recipient
    via: str
    category: str = ""


@dataclass(frozen=True, slots=True)
class Unresolved:
    target: str
    reason: str


def patient_keys(event: CareEvent) -> list[str]:
    """The event's patient as rosters name it: authority|identifier, the patient key first."""
    keys = [event.patient_key]
    keys += [member_key(i.get("system", ""), i.get("value", "")) for i in event.identifiers if i.get("value")]
    return list(dict.fromkeys(keys))


def roster_lookup(event: CareEvent, routing_map: RoutingMap, role: str) -> tuple[str, str] | None:
    """(recipient id, how) of the first roster attributing this patient in ``role``."""
    keys = patient_keys(event)
    for roster in routing_map.rosters:
        for key in keys:
            found = roster.members.get(key)
            if found is not None and role in found.roles:
                where = f" line {found.line}" if found.line else ""
                return found.roles[role], f"roster {roster.id}{where}"
    return None


def is_rostered_with(event: CareEvent, routing_map: RoutingMap, recipient_id: str) -> bool:
    keys = patient_keys(event)
    return any(
        recipient_id in found.roles.values()
        for roster in routing_map.rosters
        for key in keys
        if (found := roster.members.get(key)) is not None
    )


def _by_content(event: CareEvent, routing_map: RoutingMap, role: str) -> list[Resolution]:
    if role == "pcp":
        found = pcp_ids(event)
        label = "content PD1-4"
    elif role == "payer":
        found = [("", v) for v in payer_ids(event)]
        label = "content IN1"
    else:
        return []
    out = []
    for recipient in routing_map.recipients.values():
        if recipient.kind != role:
            continue
        hit = next((v for s, v in found for i in recipient.identifiers if i.matches(s, v)), None)
        if hit is not None:
            out.append(Resolution(recipient, f"{label} ({hit})"))
    return out


def _attributed(event: CareEvent, routing_map: RoutingMap, role: str) -> list[Resolution | Unresolved]:
    by_content = _by_content(event, routing_map, role)
    if by_content:
        return list(by_content)
    found = roster_lookup(event, routing_map, role)
    if found is not None:
        return [Resolution(routing_map.recipients[found[0]], found[1])]
    looked = {"pcp": "PD1-4 and rosters", "payer": "IN1 and rosters"}.get(role, "rosters")
    return [Unresolved(f"attributed:{role}", f"no {role} for this patient in {looked} matches the directory")]


def _service(routing_map: RoutingMap, category: str, why: str) -> list[Resolution | Unresolved]:
    cbos = [r for r in routing_map.recipients.values() if category in r.services]
    if not cbos:
        return [Unresolved(f"service:{category}", f"no recipient offers {category}{why}")]
    return [Resolution(r, f"service {category}{why}", category) for r in cbos]


def resolve(event: CareEvent, routing_map: RoutingMap, target: str) -> list[Resolution | Unresolved]:
    if target.startswith("logistics:"):  # an order goes to the hub's desk; vendors are chosen by the cascade
        return [Resolution(LOGISTICS_DESK, f"logistics desk ({target.removeprefix('logistics:')} vendors)")]
    if target.startswith("attributed:"):
        return _attributed(event, routing_map, target.removeprefix("attributed:"))
    if target == "service:sdoh":
        found = categories(diagnosis_codes(event))
        if not found:
            return [Unresolved(target, "no SDOH diagnosis (ICD-10 Z55-Z65) in the event")]
        return [r for cat, codes in found.items() for r in _service(routing_map, cat, f" (from {', '.join(codes)})")]
    if target.startswith("service:"):
        return _service(routing_map, target.removeprefix("service:"), "")
    recipient = routing_map.recipients.get(target)
    if recipient is None:
        return [Unresolved(target, f"recipient {target!r} is not in the directory")]
    return [Resolution(recipient, "fixed")]
