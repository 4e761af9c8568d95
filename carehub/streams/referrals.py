"""Referral and follow-up tasks as FHIR transaction Bundles (pure).

The Gravity SDOH pattern (standards.md §3): a ServiceRequest (the *what*) and
a Task asking the owner to fulfil it (``intent`` order, ``code`` fulfill,
``focus`` the ServiceRequest, ``for`` the Patient, ``authoredOn``,
``requester`` the hub, ``owner`` the recipient, ``restriction.period`` with
the due date, a local ``businessStatus``). Transitions of care use the same
shape with local codes: a TCM contact within 2 business days of discharge, a
visit within 7 or 14 days (``partOf`` the contact task), medication
reconciliation. Every entry is a POST; references use ``urn:uuid`` full URLs
that resolve inside the Bundle; Patient, Encounter and Organizations are
conditional creates (``ifNoneExist`` on their identifiers).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from carehub.core.records import CareEvent, JSONObject
from carehub.core.uuids import Namespace
from carehub.journal.tasks import BUSINESS_STATUS, PATIENT_SYSTEM, patient_reference
from carehub.streams.notify import Hub
from carehub.streams.routing.match import diagnosis_codes
from carehub.streams.routing.model import Due, Recipient
from carehub.streams.routing.sdoh import SDT, categories, display_of

SDOHCC = "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition"
TASK_CODE = "http://hl7.org/fhir/CodeSystem/task-code"
LOCAL_TASK = "urn:carehub:task-code"
TASK_IDENTIFIER = "urn:carehub:task"
RECIPIENT_SYSTEM = "urn:carehub:recipient"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
_NS = Namespace("0d6c1b8e-3f4a-4c55-8d2e-7a1b9c0e5f21")


@dataclass(frozen=True, slots=True)
class TaskKind:
    display: str
    due: Due
    business_status: str


#: Known task codes: what they are, when they are due by default, their first businessStatus.
KINDS: dict[str, TaskKind] = {
    "tcm-contact": TaskKind("TCM interactive contact within 2 business days of discharge", Due(2), "contact-pending"),
    "tcm-visit": TaskKind("TCM face-to-face visit after discharge", Due(days=14), "visit-to-schedule"),
    "med-rec": TaskKind("Medication reconciliation after discharge", Due(days=7), "reconciliation-pending"),
    "sdoh-referral": TaskKind("Referral for social needs", Due(days=14), "referral-sent"),
}


def add_business_days(start: datetime, days: int) -> datetime:
    """``start`` plus ``days`` weekdays (Saturday and Sunday skipped; holidays are not known)."""
    current = start
    while days > 0:
        current += timedelta(days=1)
        if current.weekday() < 5:
            days -= 1
    return current


def due_at(start: str, due: Due) -> str:
    """The due instant for a task authored at ``start`` (ISO 8601, offset kept)."""
    moment = datetime.fromisoformat(start.replace("Z", "+00:00"))
    moment = add_business_days(moment, due.business_days) + timedelta(days=due.days)
    return moment.isoformat()


@dataclass(frozen=True, slots=True)
class TaskRequest:
    """What one planned task action needs: its code, owner, key, due and (SDOH) category."""

    code: str
    owner: Recipient
    key: str
    due: Due | None = None
    category: str = ""
    part_of_key: str = ""
    #: The hub's patient key: ``Task.for`` also names it as an identifier (urn:carehub:patient).
    patient_key: str = ""


def _uuid(key: str, what: str) -> str:
    return _NS.id(f"{what}|{key}")


def _ref(full_url: str) -> JSONObject:
    return {"reference": full_url}


def _resource(event: CareEvent, ref: str) -> JSONObject:
    for entry in event.bundle.get("entry", []):
        resource = entry.get("resource", {})
        if f"{resource.get('resourceType')}/{resource.get('id')}" == ref:
            return dict(resource)
    return {}


def _identifier_query(resource: JSONObject) -> str | None:
    ident = next((i for i in resource.get("identifier", []) if i.get("value")), None)
    if ident is None:
        return None
    system = ident.get("system", "")
    return f"identifier={system}|{ident['value']}" if system else f"identifier={ident['value']}"


def _post(full_url: str, resource: JSONObject, conditional: bool = False) -> JSONObject:
    request: JSONObject = {"method": "POST", "url": resource["resourceType"]}
    query = _identifier_query(resource) if conditional else None
    if query:
        request["ifNoneExist"] = query
    return {"fullUrl": full_url, "resource": resource, "request": request}


def _patient(event: CareEvent) -> JSONObject:
    source = _resource(event, f"Patient/{event.patient_id}")
    keep = ("identifier", "name", "birthDate", "gender", "telecom", "address")
    patient: JSONObject = {"resourceType": "Patient", **{k: source[k] for k in keep if k in source}}
    hub_identity = {"system": PATIENT_SYSTEM, "value": event.patient_key}
    patient["identifier"] = [*patient.get("identifier", []), hub_identity]  # the Task's ``for`` names it
    return patient


def _encounter(event: CareEvent, patient_url: str) -> JSONObject | None:
    if not event.encounter_id:
        return None
    source = _resource(event, f"Encounter/{event.encounter_id}")
    keep = ("identifier", "status", "class", "type", "period")
    found: JSONObject = {k: source[k] for k in keep if k in source}
    disposition = source.get("hospitalization", {}).get("dischargeDisposition")
    if disposition:
        found["hospitalization"] = {"dischargeDisposition": disposition}
    return {"resourceType": "Encounter", "status": "unknown", **found, "subject": _ref(patient_url)}


def _organization(name: str, identifiers: list[JSONObject]) -> JSONObject:
    return {"resourceType": "Organization", "active": True, "name": name, "identifier": identifiers}


def owner_organization(recipient: Recipient) -> JSONObject:
    idents = [{"system": i.system, "value": i.value} if i.system else {"value": i.value} for i in recipient.identifiers]
    return _organization(recipient.name, [{"system": RECIPIENT_SYSTEM, "value": recipient.id}, *idents])


def _category(request: TaskRequest) -> JSONObject:
    if request.code == "sdoh-referral":
        return {"coding": [{"system": SDT, "code": request.category, "display": display_of(request.category)}]}
    return {"coding": [{"system": LOCAL_TASK, "code": "transitions-of-care"}]}


def _kind(code: str) -> TaskKind:
    return KINDS.get(code, TaskKind(code, Due(days=7), "requested"))


def service_request(event: CareEvent, request: TaskRequest, urls: dict[str, str], authored: str) -> JSONObject:
    resource: JSONObject = {
        "resourceType": "ServiceRequest",
        "identifier": [{"system": TASK_IDENTIFIER, "value": f"sr-{request.key}"}],
        "status": "active",
        "intent": "order",
        "category": [_category(request)],
        "code": {"coding": [{"system": LOCAL_TASK, "code": request.code, "display": _kind(request.code).display}]},
        "subject": _ref(urls["patient"]),
        "authoredOn": authored,
        "requester": _ref(urls["hub"]),
        "performer": [_ref(urls["owner"])],
        "priority": "routine",
    }
    if request.code == "sdoh-referral":
        resource["meta"] = {"profile": [f"{SDOHCC}/SDOHCC-ServiceRequest"]}
        codes = categories(diagnosis_codes(event)).get(request.category, [])
        resource["reasonCode"] = [{"coding": [{"system": ICD10, "code": c}]} for c in codes]
    if "encounter" in urls:
        resource["encounter"] = _ref(urls["encounter"])
    return resource


def task_resource(request: TaskRequest, urls: dict[str, str], authored: str) -> JSONObject:
    kind = _kind(request.code)
    task: JSONObject = {
        "resourceType": "Task",
        "identifier": [{"system": TASK_IDENTIFIER, "value": request.key}],
        "status": "requested",
        "businessStatus": {"coding": [{"system": BUSINESS_STATUS, "code": kind.business_status}]},
        "intent": "order",
        "priority": "routine",
        "code": {"coding": [{"system": TASK_CODE, "code": "fulfill"}]},
        "description": kind.display,
        "focus": _ref(urls["service_request"]),
        "for": {**_ref(urls["patient"]), **patient_reference(request.patient_key)},
        "authoredOn": authored,
        "requester": _ref(urls["hub"]),
        "owner": _ref(urls["owner"]),
        "restriction": {"period": {"start": authored, "end": due_at(authored, request.due or kind.due)}},
    }
    if request.code == "sdoh-referral":
        task["meta"] = {"profile": [f"{SDOHCC}/SDOHCC-TaskForReferralManagement"]}
    if "encounter" in urls:
        task["encounter"] = _ref(urls["encounter"])
    if request.part_of_key:
        task["partOf"] = [{"identifier": {"system": TASK_IDENTIFIER, "value": request.part_of_key}}]
    return task


def task_bundle(event: CareEvent, request: TaskRequest, *, hub: Hub, timestamp: str) -> JSONObject:
    """A transaction Bundle: Patient, Encounter, requester, owner, ServiceRequest and Task (all POST).

    ``authoredOn`` is the event time (the discharge), so due dates count from
    it; ids derive from ``request.key`` so a rebuilt bundle is identical.
    """
    authored = event.occurred_at or timestamp
    names = ("patient", "encounter", "hub", "owner", "service_request", "task")
    urls = {name: f"urn:uuid:{_uuid(request.key, name)}" for name in names}
    encounter = _encounter(event, urls["patient"])
    if encounter is None:
        urls.pop("encounter")
    hub_org = _organization(hub.name, [{"system": "urn:ietf:rfc:3986", "value": hub.base_url}])
    entries = [_post(urls["patient"], _patient(event), conditional=True)]
    if encounter is not None:
        entries.append(_post(urls["encounter"], encounter, conditional=True))
    entries += [
        _post(urls["hub"], hub_org, conditional=True),
        _post(urls["owner"], owner_organization(request.owner), conditional=True),
        _post(urls["service_request"], service_request(event, request, urls, authored)),
        _post(urls["task"], task_resource(request, urls, authored)),
    ]
    return {
        "resourceType": "Bundle",
        "id": _uuid(request.key, "bundle"),
        "type": "transaction",
        "timestamp": timestamp,
        "entry": entries,
    }
