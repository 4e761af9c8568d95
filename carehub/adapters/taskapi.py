"""The hub's FHIR Task endpoint, for recipients without a FHIR server of their own.

* ``GET  /fhir/Task/{id}``                      read
* ``GET  /fhir/Task?owner=…&status=…``          search (a searchset Bundle); also by patient:
  ``patient=<patient key>`` or ``subject:identifier=urn:carehub:patient|<patient key>``
* ``PUT  /fhir/Task/{id}`` (a Task) or
  ``PATCH /fhir/Task/{id}`` (a JSON object)     update status, statusReason, businessStatus, output

Callers are recipient principals (adapters.httpauth): each sees and changes
only the Tasks the hub sent to the directory recipient its token or
certificate is bound to (403 for another recipient's Task), and the change is
journaled with that principal as its source, never a name from a header.
Only the fields a performer may set are taken; the Gravity status rules
(journal.tasks.check_transition) decide whether a change is allowed. Every
change is journaled and published as a TaskEvent (``task.events``). Bad
input gets 400/404/422 with an OperationOutcome; nothing raised here escapes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from carehub.adapters.fhirhttp import ForbiddenError, fhir_response, refused
from carehub.adapters.httpauth import principal_of, refusal
from carehub.core.principal import Principal
from carehub.core.records import TaskEvent
from carehub.journal import Journal
from carehub.journal.tasks import PATIENT_SYSTEM, TaskChange

log = logging.getLogger(__name__)
#: What a performer may change on a Task through this endpoint.
PERFORMER_FIELDS = ("status", "statusReason", "businessStatus", "output", "note")
PublishTaskEvent = Callable[[TaskEvent], Awaitable[None]]


def fhir(resource: dict[str, Any], status: int = 200) -> web.Response:
    return fhir_response(resource, status)


def searchset(tasks: list[dict[str, Any]], base: str) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(tasks),
        "entry": [{"fullUrl": f"{base}/Task/{t['id']}", "resource": t, "search": {"mode": "match"}} for t in tasks],
    }


def performer_fields(body: Any, task_id: str, whole: bool) -> dict[str, Any] | str:
    """The fields to apply, or why the body is not acceptable."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    if whole:
        if body.get("resourceType") != "Task":
            return "PUT needs a Task resource"
        if body.get("id") not in (None, task_id):
            return "the Task id in the body does not match the URL"
    fields = {k: body[k] for k in PERFORMER_FIELDS if k in body}
    if "status" in fields and not isinstance(fields["status"], str):
        return "status must be a string"
    if "output" in fields and not isinstance(fields["output"], list):
        return "output must be a list"
    if not fields:
        return f"nothing to change: give one of {', '.join(PERFORMER_FIELDS)}"
    return fields


def task_event(change: TaskChange, source: str) -> TaskEvent:
    resource = change.resource
    return TaskEvent(
        task_id=change.task_id,
        kind="status-changed" if change.from_status != change.to_status else "updated",
        from_status=change.from_status,
        to_status=change.to_status,
        at=change.at,
        source=source,
        owner=str(resource.get("owner", {}).get("reference", "")),
        requester=str(resource.get("requester", {}).get("reference", "")),
        turnaround_s=change.turnaround_s,
    )


def patient_searched(patient: str | None, subject_identifier: str | None) -> str | None:
    """The patient key asked for (None: any patient); ``!`` + why when the parameters are not usable."""
    if subject_identifier is not None:
        system, bar, value = subject_identifier.partition("|")
        if not bar or system != PATIENT_SYSTEM or not value:
            return f"!subject:identifier must be {PATIENT_SYSTEM}|<patient key>, e.g. {PATIENT_SYSTEM}|RGH|MRN100871"
        if patient is not None and patient != value:
            return "!patient and subject:identifier name different patients"
        return value
    if patient is not None and not patient.strip():
        return "!patient must be a patient key, e.g. RGH|MRN100871"
    return patient


def _caller(request: web.Request) -> Principal:
    """The recipient principal the access check established (the rules make every Task route recipient-bound)."""
    who = principal_of(request)
    if who is None or who.recipient is None:
        raise web.HTTPForbidden()  # unreachable behind adapters.httpauth; never serve an anonymous caller
    return who


def task_routes(journal: Journal, publish: PublishTaskEvent, base_url: str) -> list[web.RouteDef]:
    tasks = journal.tasks

    async def owned(task_id: str, who: Principal) -> web.Response | None:
        """None when the Task is the caller's; else the 404 or 403 to answer."""
        holder = await journal.db.run(tasks.recipient_of, task_id)
        if holder is None:
            return refused(404, "not-found", "no such Task")
        if holder != who.recipient:
            return refusal(ForbiddenError("the Task belongs to another recipient"))
        return None

    async def read(request: web.Request) -> web.Response:
        denied = await owned(request.match_info["id"], _caller(request))
        if denied is not None:
            return denied
        task = await journal.db.run(tasks.get, request.match_info["id"])
        return fhir(task) if task is not None else refused(404, "not-found", "no such Task")

    async def search(request: web.Request) -> web.Response:
        unknown = set(request.query) - {"owner", "status", "_format", "patient", "subject:identifier"}
        if unknown:
            return refused(400, "not-supported", f"unsupported search parameter(s): {', '.join(sorted(unknown))}")
        patient = patient_searched(request.query.get("patient"), request.query.get("subject:identifier"))
        if patient is not None and patient.startswith("!"):
            return refused(400, "invalid", patient[1:])
        who = _caller(request)
        found = await journal.db.run(
            tasks.search, request.query.get("owner"), request.query.get("status"), who.recipient, patient
        )
        return fhir(searchset(found, base_url))

    async def update(request: web.Request) -> web.Response:
        task_id = request.match_info["id"]
        who = _caller(request)
        denied = await owned(task_id, who)
        if denied is not None:
            return denied
        try:
            body = json.loads(await request.read())
        except ValueError:
            return refused(400, "invalid", "the body is not JSON")
        fields = performer_fields(body, task_id, whole=request.method == "PUT")
        if isinstance(fields, str):
            return refused(400, "invalid", fields)
        source = who.actor
        try:
            change = await journal.db.run(tasks.update, task_id, fields, source)
        except KeyError:
            return refused(404, "not-found", "no such Task")
        except ValueError as exc:
            return refused(422, "business-rule", str(exc))
        await publish(task_event(change, source))
        log.info("task %s %s -> %s via endpoint", task_id, change.from_status, change.to_status)
        return fhir(change.resource)

    return [
        web.get("/fhir/Task", search),
        web.get("/fhir/Task/{id}", read),
        web.put("/fhir/Task/{id}", update),
        web.patch("/fhir/Task/{id}", update),
    ]
