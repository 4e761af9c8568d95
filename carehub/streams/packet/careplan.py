"""The discharge episode's CarePlan: its activities are the follow-up Tasks (pure).

One CarePlan per discharge episode: its id derives from the sending facility and
the visit number (PV1-19), so a repeated or corrected A03 of the visit, its A13
cancel and the visit after a merge (A40) all name the same CarePlan. Activities
reference the Tasks by the id the hub's Task endpoint serves them under (the
Task's ``urn:carehub:task`` identifier). ``update_message`` is what the care team
receives when a Task changes or the discharge is cancelled (the plan revoked).
"""

from __future__ import annotations

from collections.abc import Sequence

from carehub.core.records import CareEvent, JSONObject
from carehub.core.uuids import Namespace
from carehub.journal.tasks import PATIENT_SYSTEM, TERMINAL
from carehub.streams.corrections import reason_text
from carehub.streams.notify import Hub, entry, organization
from carehub.streams.referrals import KINDS, RECIPIENT_SYSTEM, TaskRequest

CAREPLAN_SYSTEM = "urn:carehub:careplan"
CATEGORY = {"system": "http://hl7.org/fhir/us/core/CodeSystem/careplan-category", "code": "assess-plan"}
MESSAGE_EVENTS = "urn:carehub:message-event"
_NS = Namespace("5a0c2f1e-7b3d-4e9a-8c61-0f2d4b6a8e13")
#: Task fields a CarePlan update carries (the rest points into the Task's own Bundle).
TASK_FIELDS = ("identifier", "status", "statusReason", "businessStatus", "intent", "priority", "code",
               "description", "authoredOn", "lastModified", "restriction", "output", "note")  # fmt: skip


def visit_number(event: CareEvent) -> str:
    """The visit's number (Encounter identifier of type VN, PV1-19); else the encounter or event id."""
    for resource in (e.get("resource", {}) for e in event.bundle.get("entry", [])):
        if resource.get("resourceType") == "Encounter" and resource.get("id") == event.encounter_id:
            for ident in resource.get("identifier", []):
                codes = [c.get("code") for c in ident.get("type", {}).get("coding", [])]
                if "VN" in codes and ident.get("value"):
                    return str(ident["value"])
    return event.encounter_id or event.event_id


def careplan_id(event: CareEvent) -> str:
    """Stable for the discharge episode: facility + visit number (not the patient key, which a merge changes)."""
    return _NS.id(f"careplan|{event.facility}|{visit_number(event)}")


def activity(request: TaskRequest) -> JSONObject:
    kind = KINDS.get(request.code)
    return {"reference": {"reference": f"Task/{request.key}", "display": kind.display if kind else request.code}}


def care_plan(
    event: CareEvent,
    tasks: Sequence[TaskRequest],
    *,
    patient_ref: str,
    author_ref: str,
    care_team_ref: str = "",
    addresses: Sequence[str] = (),
    created: str,
) -> JSONObject:
    """The CarePlan of a discharge: active, its activities the follow-up Tasks planned for it."""
    plan: JSONObject = {
        "resourceType": "CarePlan",
        "id": careplan_id(event),
        "identifier": [{"system": CAREPLAN_SYSTEM, "value": careplan_id(event)}],
        "status": "active",
        "intent": "plan",
        "category": [{"coding": [CATEGORY]}],
        "title": "Transition of care after discharge",
        "subject": {"reference": patient_ref},
        "period": {"start": event.occurred_at or created},
        "created": created,
        "author": {"reference": author_ref},
    }
    if event.encounter_id:
        plan["encounter"] = {"reference": f"Encounter/{event.encounter_id}"}
    if care_team_ref:
        plan["careTeam"] = [{"reference": care_team_ref}]
    if addresses:
        plan["addresses"] = [{"reference": ref} for ref in addresses]
    if tasks:
        plan["activity"] = [activity(t) for t in tasks]
    return plan


def task_view(task: JSONObject, patient_ref: str, recipient_id: str) -> JSONObject:
    """A Task as the CarePlan update carries it: its state, for the Patient of the update, its owner by id."""
    view: JSONObject = {"resourceType": "Task", "id": str(task["id"])}
    view.update({k: task[k] for k in TASK_FIELDS if k in task})
    view["for"] = {"reference": patient_ref}
    view["owner"] = {"identifier": {"system": RECIPIENT_SYSTEM, "value": recipient_id}}
    return view


def progressed(plan: JSONObject, tasks: Sequence[JSONObject], at: str) -> JSONObject:
    """``plan`` with each activity's progress (its Task's status) and, once every Task is finished, completed."""
    by_id = {str(t["id"]): t for t in tasks}
    activities = []
    for item in plan.get("activity", []):
        ref = str(item.get("reference", {}).get("reference", ""))
        task = by_id.get(ref.removeprefix("Task/"))
        if task is None:
            activities.append(item)
            continue
        status = str(task.get("status", "requested"))
        reason = task.get("statusReason", {}).get("text", "")
        text = f"Task {status}" + (f": {reason}" if reason else "")
        activities.append({**item, "progress": [{"time": str(task.get("lastModified") or at), "text": text}]})
    out = {**plan, "activity": activities} if activities else dict(plan)
    statuses = [str(t.get("status", "")) for t in tasks]
    if out.get("status") == "active" and statuses and all(s in TERMINAL for s in statuses):
        out["status"] = "completed"
    return out


def update_message(
    plan: JSONObject,
    tasks: Sequence[tuple[JSONObject, str]],
    patient_key: str,
    *,
    hub: Hub,
    destination: str,
    recipient_name: str,
    key: str,
    timestamp: str,
) -> JSONObject:
    """A message Bundle: MessageHeader (``careplan-update`` or ``careplan-revoked``), the CarePlan and its Tasks.

    ``tasks``: (Task as the journal holds it, the directory id of its owner). References resolve
    inside the Bundle: the Patient is the hub's patient identity, the Tasks are views of theirs.
    """
    patient_id = _NS.id(f"patient|{patient_key}")
    patient: JSONObject = {
        "resourceType": "Patient",
        "id": patient_id,
        "identifier": [{"system": PATIENT_SYSTEM, "value": patient_key}],
    }
    patient_ref = f"Patient/{patient_id}"
    hub_org = organization(hub.organization_id, hub.name)
    views = [task_view(t, patient_ref, owner) for t, owner in tasks]
    sent = {k: v for k, v in plan.items() if k not in ("careTeam", "addresses", "encounter")}
    sent.update({"subject": {"reference": patient_ref}, "author": {"reference": f"Organization/{hub_org['id']}"}})
    listed = {str(v["id"]) for v in views}
    sent["activity"] = [a for a in sent.get("activity", []) if a["reference"]["reference"][5:] in listed]
    if not sent["activity"]:
        sent.pop("activity")
    code = "careplan-revoked" if plan.get("status") == "revoked" else "careplan-update"
    header: JSONObject = {
        "resourceType": "MessageHeader",
        "id": _NS.id(f"header|{key}"),
        "eventCoding": {"system": MESSAGE_EVENTS, "code": code},
        "destination": [{"name": recipient_name, "endpoint": destination}],
        "sender": {"reference": f"Organization/{hub_org['id']}"},
        "source": {"name": hub.name, "endpoint": hub.base_url},
        "focus": [{"reference": f"CarePlan/{plan['id']}"}],
    }
    resources = [header, sent, *views, patient, hub_org]
    return {
        "resourceType": "Bundle",
        "id": _NS.id(f"bundle|{key}"),
        "type": "message",
        "timestamp": timestamp,
        "entry": [entry(hub.base_url, r) for r in resources],
    }


def revoked(plan: JSONObject, why: str) -> JSONObject:
    """``plan`` revoked (its discharge was cancelled), with the reason as a note."""
    return {**plan, "status": "revoked", "note": [*plan.get("note", []), {"text": why}]}


def revocation_message(
    event: CareEvent, *, hub: Hub, destination: str, recipient_name: str, key: str, timestamp: str
) -> JSONObject:
    """What a packet's recipient is sent when the discharge is cancelled (A13): the CarePlan, revoked.

    The Tasks are cancelled by their own corrections (streams.corrections); this names the plan
    by its stable id so the recipient revokes its copy.
    """
    plan: JSONObject = {
        "resourceType": "CarePlan",
        "id": careplan_id(event),
        "identifier": [{"system": CAREPLAN_SYSTEM, "value": careplan_id(event)}],
        "status": "active",
        "intent": "plan",
        "category": [{"coding": [CATEGORY]}],
        "title": "Transition of care after discharge",
        "subject": {"reference": "Patient/unset"},
    }
    plan = revoked(plan, reason_text(event))
    return update_message(plan, [], event.patient_key, hub=hub, destination=destination,
                          recipient_name=recipient_name, key=key, timestamp=timestamp)  # fmt: skip
