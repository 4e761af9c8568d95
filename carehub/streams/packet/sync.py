"""Keep each discharge's CarePlan in step with its Tasks, and tell the care team (journal calls, run on its thread).

* ``record_packets``: when the route stage plans a discharge's packets, the plan
  (subject: the hub's patient identity), its Tasks and its members (each packet
  recipient, the packet delivery and the labels it was disclosed under) go to the
  journal (journal.careplans).
* ``episode_changes``: an A13 (or A11) revokes the visit's plan before its
  corrections leave; a merge moves the retired record's plans to the survivor.
* ``plan_updates``: a Task's status change (``task.events``: from ``/fhir/Task``, the
  hub's own cancellations) updates the plan's activity progress (and completes
  the plan when every Task is finished) and yields one ``careplan-update``
  message per member. Each is a correction of the member's packet (``corrects``),
  so it leaves only when the member received the packet, through the same
  consent gate as everything (its labels are the packet's); its key is the
  plan's state, so a repeated task event sends nothing new. A revoked plan is
  updated in the journal but not sent again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from carehub.core.payload import Payload
from carehub.core.records import CareEvent, Delivery, JSONObject, TaskEvent
from carehub.journal import Journal
from carehub.journal.careplans import Member
from carehub.journal.tasks import patient_reference
from carehub.streams.corrections import TASK_CANCELS, reason_text
from carehub.streams.notify import Hub
from carehub.streams.packet.careplan import care_plan, careplan_id, progressed, revoked, update_message
from carehub.streams.referrals import TaskRequest
from carehub.streams.routing.model import Recipient

FHIR_JSON = "application/fhir+json"
UPDATE_RULE = "careplan-update"


def kept_plan(event: CareEvent, tasks: Sequence[TaskRequest], hub: Hub, created: str) -> JSONObject:
    """The CarePlan as the journal keeps it: no reference into one packet, the subject by the hub's identity."""
    plan = care_plan(event, tasks, patient_ref="Patient/unused", author_ref=f"Organization/{hub.organization_id}",
                     created=created)  # fmt: skip
    plan.pop("encounter", None)
    return {**plan, "subject": patient_reference(event.patient_key)}


def record_packets(
    journal: Journal, event: CareEvent, packets: Sequence[Delivery], tasks: Sequence[TaskRequest], hub: Hub, now: str
) -> bool:
    """The discharge's plan, Tasks and members (the recipients its packets are planned for)."""
    members = [Member(d.recipient_id, d.delivery_id, tuple(d.labels)) for d in packets]
    plan = kept_plan(event, tasks, hub, now)
    return journal.careplans.record(plan, event.patient_key, members, [t.key for t in tasks])


def episode_changes(journal: Journal, event: CareEvent, retired_keys: Sequence[str]) -> None:
    """A cancelled visit's plan is revoked; a merge's retired plans follow the survivor."""
    if event.kind in TASK_CANCELS:
        stored = journal.careplans.get(careplan_id(event))
        if stored is not None and stored.status != "revoked":
            journal.careplans.update(stored.id, revoked(stored.resource, reason_text(event)))
    if retired_keys:
        journal.careplans.reassign(retired_keys, event.patient_key)


def _state_key(plan_id: str, tasks: Sequence[JSONObject], recipient_id: str) -> str:
    state = ",".join(sorted(f"{t['id']}={t.get('status', '')}" for t in tasks))
    return hashlib.sha256(f"careplan|{plan_id}|{state}|{recipient_id}".encode()).hexdigest()[:32]


def plan_updates(
    journal: Journal,
    change: TaskEvent,
    *,
    hub: Hub,
    directory: Mapping[str, Recipient],
    map_version: str,
) -> list[Delivery]:
    """The plan of the changed Task, brought up to date; one update per member (none for other events)."""
    if change.kind != "status-changed":
        return []
    stored = journal.careplans.for_task(change.task_id)
    if stored is None:
        return []
    tasks: list[tuple[JSONObject, str]] = []
    for task_id in stored.task_ids:
        task, owner = journal.tasks.get(task_id), journal.tasks.recipient_of(task_id)
        if task is not None and owner is not None:
            tasks.append((task, owner))
    plan = progressed(stored.resource, [t for t, _ in tasks], change.at)
    journal.careplans.update(stored.id, plan)
    if plan.get("status") == "revoked":
        return []
    out = []
    for member in stored.members:
        recipient = directory.get(member.recipient_id)
        if recipient is None:
            continue
        key = _state_key(stored.id, [t for t, _ in tasks], recipient.id)
        payload = update_message(plan, tasks, stored.patient_key, hub=hub, destination=recipient.endpoint,
                                 recipient_name=recipient.name, key=key, timestamp=change.at)  # fmt: skip
        reason = (f"Task {change.task_id} {change.from_status} -> {change.to_status}; "
                  f"{recipient.id} holds CarePlan {stored.id}")  # fmt: skip
        out.append(
            Delivery(
                delivery_id=key,
                idempotency_key=key,
                event_id=f"careplan:{stored.id}",
                patient_key=stored.patient_key,
                recipient_id=recipient.id,
                action="packet",
                channel=recipient.channel,
                endpoint=recipient.endpoint,
                content_type=FHIR_JSON,
                payload=Payload(payload),
                rule_id=UPDATE_RULE,
                map_version=map_version,
                reason=reason,
                labels=list(member.labels),
                corrects=member.delivery_id,
            )
        )
    return out
