"""Corrections (pure): which deliveries an event corrects, and the Task cancellation it sends.

A cancel (A11 cancel admit, A12 cancel transfer, A13 cancel discharge, A27/A38
cancel pre-admit), an A08 that corrects a key field, and a merge or identifier
change (A18, A34-A36, A39-A42, A46-A51) are corrections: the routing map sends
them (``correct: received``) to every recipient that received what they
correct. The candidates come from the patient's state (streams.signals: what
was sent per visit); whether the recipient really received the original is
checked in the journal when the correction is about to leave
(streams.delivery_flow), since the original may still be on its way.

* every recipient that got a notification gets one notification of the
  corrected event (its Encounter carries the v2-to-FHIR status: A11
  ``cancelled``, A13 ``in-progress``; a merge carries ``Patient.link``);
* every Task of a cancelled admission or discharge gets a Task update,
  ``status`` cancelled with a ``statusReason``, and is cancelled in the
  journal's task table;
* every recipient of a cancelled discharge's transition-of-care packet gets
  its CarePlan revoked (streams.packet.careplan.revocation_message).
"""

from __future__ import annotations

from collections.abc import Iterable

from carehub.core.records import CareEvent, JSONObject
from carehub.core.uuids import Namespace
from carehub.streams.signals import PatientState, Sent

#: Corrections of one visit (what was sent for that visit is corrected).
VISIT_CORRECTIONS = frozenset({"cancel-admit", "cancel-transfer", "cancel-discharge", "cancel-pre-admit", "update"})
#: Cancels whose visit's Tasks are cancelled (no discharge, no transition of care).
TASK_CANCELS = frozenset({"cancel-admit", "cancel-discharge", "cancel-pre-admit"})
#: Identity corrections: what was sent about the retired record is corrected.
IDENTITY_CORRECTIONS = frozenset({"merge", "change-identifier"})
KINDS = VISIT_CORRECTIONS | IDENTITY_CORRECTIONS
_NS = Namespace("3b0f6f4e-2d1c-4e8a-9a57-5c7d0e1f2a3b")

_WHY = {
    "cancel-admit": "the admission was cancelled",
    "cancel-pre-admit": "the pre-admission was cancelled",
    "cancel-discharge": "the discharge was cancelled",
    "cancel-transfer": "the transfer was cancelled",
}


def reason_text(event: CareEvent) -> str:
    """Why a Task is cancelled, as its statusReason says it."""
    why = _WHY.get(event.kind, "the event was corrected")
    return f"{why} ({event.trigger})" if event.trigger else why


def _latest_notify_per_recipient(sent: Iterable[Sent]) -> list[Sent]:
    latest: dict[str, Sent] = {}
    for item in sent:
        if item.action == "notify":
            latest[item.recipient_id] = item
    return list(latest.values())


def originals(state: PatientState, event: CareEvent, retired: Iterable[PatientState] = ()) -> list[Sent]:
    """The deliveries ``event`` corrects: one notification per recipient told, and each Task of a cancelled visit."""
    if event.kind in IDENTITY_CORRECTIONS:
        pool = [s for r in retired for v in r.visits for s in v.sent]
        return _latest_notify_per_recipient(pool)
    if event.kind not in VISIT_CORRECTIONS:
        return []
    visit = state.visit(event.encounter_id)
    if visit is None:
        return []
    found = _latest_notify_per_recipient(visit.sent)
    if event.kind in TASK_CANCELS:  # its Tasks are cancelled, its transition-of-care packet's CarePlan revoked
        found += [s for s in visit.sent if s.action in ("task", "packet")]
    return found


def cancel_task_bundle(task_key: str, event: CareEvent, *, system: str, timestamp: str) -> JSONObject:
    """A transaction Bundle with one conditional update: the Task identified by ``task_key`` is cancelled.

    The recipient's server finds its Task by the identifier the hub gave it; the
    Task states ``status`` cancelled and ``statusReason`` (standards.md §3: either
    side may cancel; statusReason.text when cancelled).
    """
    task: JSONObject = {
        "resourceType": "Task",
        "identifier": [{"system": system, "value": task_key}],
        "status": "cancelled",
        "statusReason": {"text": reason_text(event)},
        "intent": "order",
        "lastModified": timestamp,
    }
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "timestamp": timestamp,
        "entry": [
            {
                "fullUrl": f"urn:uuid:{_NS.id(task_key)}",
                "resource": task,
                "request": {"method": "PUT", "url": f"Task?identifier={system}|{task_key}"},
            }
        ],
    }
