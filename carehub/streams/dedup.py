"""Route each visit's admit and discharge once, whichever feed brought it (pure).

The same visit can arrive by ADT (A01) and by a FHIR Subscription (Encounter
-> in-progress). Both give the same patient key and, when the business
identifiers match (visit number and authority, else admit time), the same
Encounter id (carehub/mappings/identity.py, carehub/mappings/fhir/identity.py). The key of
an event is (Encounter id, kind); an admit or discharge whose key was
already routed for this patient is a duplicate. A cancel (A11/A13) forgets
the key it cancels, so a re-admission after a cancelled one is routed.
Other kinds (transfers, updates, registrations) are not deduplicated here.

Each remembered key keeps the id of the event that was routed for it. The
same event seen again is not a duplicate but a reprocessing: a worker that
stopped after its table write reached the changelog and before its
deliveries were published takes the event again after the restart, and must
route it again (the deliveries keep their idempotency keys).
"""

from __future__ import annotations

from dataclasses import dataclass

from carehub.core.records import CareEvent

ONCE_KINDS = frozenset({"admit", "discharge"})
CANCELS = {"cancel-admit": "admit", "cancel-discharge": "discharge"}
#: Keys remembered per patient (oldest forgotten first).
MAX_KEYS = 200
#: (visit key, id of the event routed for it)
Seen = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class DedupDecision:
    route: bool
    reason: str
    #: the patient's remembered (key, event id) pairs after this event
    seen: Seen


def visit_key(encounter_id: str, kind: str) -> str:
    return f"{encounter_id}|{kind}"


def read_seen(stored: object) -> Seen:
    """The table's value: ``[[key, event id], ...]`` (older rows: ``[key, ...]``, no event id)."""
    if not isinstance(stored, list):
        return ()
    return tuple((str(item), "") if isinstance(item, str) else (str(item[0]), str(item[1])) for item in stored)


def decide(event: CareEvent, seen: Seen) -> DedupDecision:
    if event.kind in CANCELS and event.encounter_id:
        forget = visit_key(event.encounter_id, CANCELS[event.kind])
        return DedupDecision(
            True, f"{event.kind}: forgets {CANCELS[event.kind]}", tuple(k for k in seen if k[0] != forget)
        )
    if event.kind not in ONCE_KINDS:
        return DedupDecision(True, f"{event.kind} is not deduplicated", seen)
    if not event.encounter_id:
        return DedupDecision(True, "no encounter id to recognise the visit by", seen)
    key = visit_key(event.encounter_id, event.kind)
    routed_by = next((event_id for k, event_id in seen if k == key), None)
    if routed_by == event.event_id:
        return DedupDecision(True, f"{event.kind} of this visit taken again (the same event, reprocessed)", seen)
    if routed_by is not None:
        via = event.source.get("fhir_source") or event.source.get("message_type") or "?"
        return DedupDecision(False, f"{event.kind} of this visit was already routed (this copy via {via})", seen)
    return DedupDecision(True, f"first {event.kind} of this visit", (*seen, (key, event.event_id))[-MAX_KEYS:])
