"""Route each visit's admit and discharge once, whichever feed brought it (pure).

The same visit can arrive by ADT (A01) and by a FHIR Subscription (Encounter
-> in-progress). Both give the same patient key and, when the business
identifiers match (visit number and authority, else admit time), the same
Encounter id (mappings/identity.py, mappings/fhir/identity.py). The key of
an event is (Encounter id, kind); an admit or discharge whose key was
already routed for this patient is a duplicate. A cancel (A11/A13) forgets
the key it cancels, so a re-admission after a cancelled one is routed.
Other kinds (transfers, updates, registrations) are not deduplicated here.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.records import CareEvent

ONCE_KINDS = frozenset({"admit", "discharge"})
CANCELS = {"cancel-admit": "admit", "cancel-discharge": "discharge"}
#: Keys remembered per patient (oldest forgotten first).
MAX_KEYS = 200


@dataclass(frozen=True, slots=True)
class DedupDecision:
    route: bool
    reason: str
    #: the patient's remembered keys after this event
    seen: tuple[str, ...]


def visit_key(encounter_id: str, kind: str) -> str:
    return f"{encounter_id}|{kind}"


def decide(event: CareEvent, seen: tuple[str, ...]) -> DedupDecision:
    if event.kind in CANCELS and event.encounter_id:
        forget = visit_key(event.encounter_id, CANCELS[event.kind])
        return DedupDecision(
            True, f"{event.kind}: forgets {CANCELS[event.kind]}", tuple(k for k in seen if k != forget)
        )
    if event.kind not in ONCE_KINDS:
        return DedupDecision(True, f"{event.kind} is not deduplicated", seen)
    if not event.encounter_id:
        return DedupDecision(True, "no encounter id to recognise the visit by", seen)
    key = visit_key(event.encounter_id, event.kind)
    if key in seen:
        via = event.source.get("fhir_source") or event.source.get("message_type") or "?"
        return DedupDecision(False, f"{event.kind} of this visit was already routed (this copy via {via})", seen)
    return DedupDecision(True, f"first {event.kind} of this visit", (*seen, key)[-MAX_KEYS:])
