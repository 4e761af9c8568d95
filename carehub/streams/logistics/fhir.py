"""Logistics orders as FHIR (pure): the order, an offer to one vendor, a step told to the care team.

* The **order** (what the routing map or a planner places, carried to the hub's logistics desk):
  a collection Bundle with the ServiceRequest (``occurrencePeriod`` the window, ``locationCode``
  the pickup or delivery place), the Patient (its address: PID-11) and a Parameters resource
  with the cascade's settings (payer, ZIP, county, offer window, schedule deadline, who to tell).
* An **offer**: a transaction Bundle like every Task the hub sends (streams.referrals): Patient,
  the hub and the vendor as Organizations, the ServiceRequest with the vendor as performer, and
  the Task (``status=requested``, ``businessStatus=offered``, ``input`` offer-expires).
* A **step** (offered, declined, accepted, scheduled, completed, exhausted, SLA alerts): a
  message Bundle whose MessageHeader names the step and focuses the ServiceRequest.
"""

from __future__ import annotations

import hashlib
from typing import Any

from carehub.core.records import JSONObject
from carehub.core.uuids import Namespace
from carehub.journal.logistics import Order
from carehub.journal.tasks import BUSINESS_STATUS, patient_reference
from carehub.streams.routing.model import Recipient

ORDER_SYSTEM = "urn:carehub:order"
SERVICE_SYSTEM = "urn:carehub:logistics-service"
STEP_SYSTEM = "urn:carehub:logistics-step"
TASK_IDENTIFIER = "urn:carehub:task"
RECIPIENT_SYSTEM = "urn:carehub:recipient"
TASK_CODE = "http://hl7.org/fhir/CodeSystem/task-code"
_NS = Namespace("5b0f3c1e-8d57-4a8e-9f0b-19c4f7a2d6e3")
DISPLAY = {
    "nemt": "Non-emergency medical transport",
    "dme": "Durable medical equipment delivery",
    "home-health": "Home health start of care",
}


def _urn(key: str, what: str) -> str:
    return f"urn:uuid:{_NS.id(f'{what}|{key}')}"


def service_request(order: Order, place: str, authored: str, performer: str = "") -> JSONObject:
    resource: JSONObject = {
        "resourceType": "ServiceRequest",
        "identifier": [{"system": ORDER_SYSTEM, "value": order.id}],
        "status": "active",
        "intent": "order",
        "category": [
            {
                "coding": [
                    {
                        "system": SERVICE_SYSTEM,
                        "code": order.service,
                        "display": DISPLAY.get(order.service, order.service),
                    }
                ]
            }
        ],  # fmt: skip
        "code": {
            "coding": [{"system": SERVICE_SYSTEM, "code": f"{order.service}:{order.capability}"}],
            "text": f"{DISPLAY.get(order.service, order.service)}: {order.capability}",
        },  # fmt: skip
        "orderDetail": [{"text": order.capability}],
        "subject": patient_reference(order.patient_key),
        "occurrencePeriod": {"start": order.window_start, "end": order.window_end},
        "authoredOn": authored,
    }
    if place:
        resource["locationCode"] = [{"text": place}]
    if performer:
        resource["performer"] = [{"reference": performer}]
    return resource


def order_bundle(order: Order, patient: JSONObject, place: str, authored: str) -> JSONObject:
    """The order as the desk journals it (the Patient keeps the address the vendors need)."""
    settings = [
        ("payer", order.payer), ("zip", order.zip), ("county", order.county),
        ("offer-seconds", order.offer_s), ("schedule-seconds", order.schedule_s), ("max-offers", order.max_offers),
        *(("notify", who) for who in order.notify),
    ]  # fmt: skip
    parameters = [
        {"name": name, "valueString": value} if isinstance(value, str) else {"name": name, "valueDecimal": value}
        for name, value in settings
    ]
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": _urn(order.id, "sr"), "resource": service_request(order, place, authored)},
            {"fullUrl": _urn(order.id, "patient"), "resource": patient},
            {
                "fullUrl": _urn(order.id, "parameters"),
                "resource": {"resourceType": "Parameters", "parameter": parameters},
            },  # fmt: skip
        ],
    }


def resource_of(bundle: JSONObject, resource_type: str) -> JSONObject:
    return next(
        (e["resource"] for e in bundle.get("entry", []) if e.get("resource", {}).get("resourceType") == resource_type),
        {},
    )


def _post(url: str, resource: JSONObject, if_none_exist: str = "") -> JSONObject:
    request: JSONObject = {"method": "POST", "url": resource["resourceType"]}
    if if_none_exist:
        request["ifNoneExist"] = if_none_exist
    return {"fullUrl": url, "resource": resource, "request": request}


def offer_bundle(order: Order, vendor: Recipient, offer_id: str, expires: str, hub_url: str, now: str) -> JSONObject:
    """The offer of ``order`` to ``vendor``: a Task it may accept or decline until ``expires``."""
    stored = order.resource or {}
    urls = {name: _urn(offer_id, name) for name in ("patient", "hub", "vendor", "sr", "task")}
    patient = resource_of(stored, "Patient")
    sr = {**resource_of(stored, "ServiceRequest"), "performer": [{"reference": urls["vendor"]}],
          "requester": {"reference": urls["hub"]}, "subject": {"reference": urls["patient"]}}  # fmt: skip
    task: JSONObject = {
        "resourceType": "Task",
        "identifier": [{"system": TASK_IDENTIFIER, "value": offer_id}],
        "status": "requested",
        "businessStatus": {"coding": [{"system": BUSINESS_STATUS, "code": "offered"}], "text": "offered"},
        "intent": "order",
        "priority": "routine",
        "code": {"coding": [{"system": TASK_CODE, "code": "fulfill"}]},
        "description": sr.get("code", {}).get("text", order.service),
        "focus": {"reference": urls["sr"]},
        "for": {"reference": urls["patient"], **patient_reference(order.patient_key)},
        "authoredOn": now,
        "requester": {"reference": urls["hub"]},
        "owner": {"reference": urls["vendor"]},
        "restriction": {"period": {"start": order.window_start}},
        "input": [
            {"type": {"text": "offer-expires"}, "valueDateTime": expires},
            {"type": {"text": "window-end"}, "valueDateTime": order.window_end},
        ],
    }
    hub_org = {"resourceType": "Organization", "active": True, "name": "carehub",
               "identifier": [{"system": "urn:ietf:rfc:3986", "value": hub_url}]}  # fmt: skip
    vendor_org = {"resourceType": "Organization", "active": True, "name": vendor.name,
                  "identifier": [{"system": RECIPIENT_SYSTEM, "value": vendor.id}]}  # fmt: skip
    return {
        "resourceType": "Bundle",
        "id": _NS.id(f"offer|{offer_id}"),
        "type": "transaction",
        "timestamp": now,
        "entry": [
            _post(urls["patient"], patient),
            _post(urls["hub"], hub_org, f"identifier=urn:ietf:rfc:3986|{hub_url}"),
            _post(urls["vendor"], vendor_org, f"identifier={RECIPIENT_SYSTEM}|{vendor.id}"),
            _post(urls["sr"], sr),
            _post(urls["task"], task),
        ],
    }


def step_key(step_id: int, order_id: str, recipient_id: str) -> str:
    return hashlib.sha256(f"logistics|{order_id}|{step_id}|{recipient_id}".encode()).hexdigest()[:32]


def step_message(order: Order, step: str, detail: str, vendor: str, key: str, hub_url: str, at: str) -> JSONObject:
    """A message Bundle telling the care team one step of an order."""
    sr: dict[str, Any] = dict(resource_of(order.resource or {}, "ServiceRequest"))
    status = {"completed": "completed", "completed-late": "completed", "exhausted": "revoked"}.get(step, "active")
    sr = {**sr, "status": status}
    if vendor:
        sr["performer"] = [{"identifier": {"system": RECIPIENT_SYSTEM, "value": vendor}}]
    sr_url = f"{hub_url.rstrip('/')}/logistics/orders/{order.id}"
    header = {
        "resourceType": "MessageHeader",
        "id": key[:16],
        "eventCoding": {"system": STEP_SYSTEM, "code": f"order-{step}"},
        "source": {"endpoint": hub_url},
        "focus": [{"reference": sr_url}],
        "reason": {"text": detail or step},
    }
    return {
        "resourceType": "Bundle",
        "id": key,
        "type": "message",
        "timestamp": at,
        "entry": [{"fullUrl": _urn(key, "header"), "resource": header}, {"fullUrl": sr_url, "resource": sr}],
    }


def withdrawal_bundle(task: JSONObject, offer_id: str, reason: str, at: str) -> JSONObject:
    """Tell a vendor its offer is withdrawn (expired, or the visit cancelled): the Task, cancelled."""
    sent = {k: v for k, v in task.items() if k not in ("id", "meta")}
    sent.update(status="cancelled", statusReason={"text": reason})
    return {
        "resourceType": "Bundle",
        "id": _NS.id(f"withdrawn|{offer_id}"),
        "type": "transaction",
        "timestamp": at,
        "entry": [{"fullUrl": _urn(offer_id, "task"), "resource": sent,
                   "request": {"method": "PUT", "url": f"Task?identifier={TASK_IDENTIFIER}|{offer_id}"}}],
    }  # fmt: skip
