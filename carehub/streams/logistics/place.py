"""Placing an order: from a routing decision's ``order`` action (pure), from a planner's request, at the desk.

The routing map's ``order`` action plans a delivery to the hub's *logistics desk*
(``LOGISTICS_DESK``, channel ``logistics``): like every delivery it passes the send-time
consent gate, and the desk (connectors.logistics.LogisticsDesk) journals the order it carries (idempotent on
the delivery id) and wakes the engine. The order is resolved from the event: the window from
the discharge time or the follow-up Task's due time, the place from PV1-37 (discharged to
location) or the patient's home address (PID-11), the ZIP and county (PID-11.5, PID-11.9)
the vendors must serve, the payer (IN1-3) whose network is preferred.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from datetime import timedelta
from typing import Any

from carehub.core.errors import DeliveryError
from carehub.core.records import CareEvent, JSONObject
from carehub.journal.logistics import Order
from carehub.journal.tasks import PATIENT_SYSTEM
from carehub.streams.logistics.engine import moment
from carehub.streams.logistics.fhir import order_bundle, resource_of
from carehub.streams.routing.match import payer_ids
from carehub.streams.routing.model import CAPABILITIES, LOGISTICS_CHANNEL, LOGISTICS_DESK, OrderSpec, Recipient

__all__ = ["LOGISTICS_CHANNEL", "LOGISTICS_DESK", "order_from_bundle", "order_request", "resolve_order"]

#: Per service: (offer window s, accepted -> scheduled s, vendors tried) when the action does not say.
DEFAULTS: dict[str, tuple[float, float, int]] = {
    "nemt": (30 * 60.0, 2 * 3600.0, 5),
    "dme": (60 * 60.0, 4 * 3600.0, 5),
    "home-health": (4 * 3600.0, 24 * 3600.0, 5),
}


def discharge_location(event: CareEvent) -> str:
    """Where the patient was discharged to (PV1-37, mapped to Encounter.hospitalization.destination): the
    Location's name, else its code; '' when the message gave none."""
    resources = {
        f"{r.get('resourceType')}/{r.get('id')}": r
        for r in (entry.get("resource", {}) for entry in event.bundle.get("entry", []))
    }
    encounter = resources.get(f"Encounter/{event.encounter_id}", {})
    destination = str(encounter.get("hospitalization", {}).get("destination", {}).get("reference", ""))
    location = resources.get(destination, {})
    codes = [str(i.get("value", "")) for i in location.get("identifier", [])]
    return str(location.get("name") or next(iter(codes), ""))


def _patient(event: CareEvent) -> JSONObject:
    for entry in event.bundle.get("entry", []):
        resource = entry.get("resource", {})
        if resource.get("resourceType") == "Patient" and resource.get("id") == event.patient_id:
            keep = ("identifier", "name", "birthDate", "gender", "telecom", "address")
            patient: JSONObject = {"resourceType": "Patient", **{k: resource[k] for k in keep if k in resource}}
            ident = {"system": PATIENT_SYSTEM, "value": event.patient_key}
            patient["identifier"] = [*patient.get("identifier", []), ident]
            return patient
    return {"resourceType": "Patient", "identifier": [{"system": PATIENT_SYSTEM, "value": event.patient_key}]}


def home_of(patient: JSONObject) -> tuple[str, str, str]:
    """(ZIP, county, one-line address) of the patient's first address."""
    address: dict[str, Any] = next(iter(patient.get("address", [])), {})
    line = ", ".join([*address.get("line", []), address.get("city", ""), address.get("postalCode", "")])
    return str(address.get("postalCode", ""))[:5], str(address.get("district", "")), line.strip(", ")


def resolve_order(
    event: CareEvent, spec: OrderSpec, key: str, notify: tuple[str, ...], anchor: str, authored: str
) -> JSONObject:
    """The order bundle for one planned ``order`` action; ``anchor``: the instant its window counts from."""
    offer_s, schedule_s, max_offers = DEFAULTS[spec.service]
    start = moment(anchor) + timedelta(hours=spec.offset_hours)
    end = start + timedelta(hours=spec.window_hours)
    patient = _patient(event)
    zip_code, county, home = home_of(patient)
    payers = payer_ids(event)
    order = Order(
        id=key,
        patient_key=event.patient_key,
        service=spec.service,
        capability=spec.capability,
        payer=payers[0] if payers else "",
        zip=zip_code,
        county=county,
        window_start=start.isoformat(),
        window_end=end.isoformat(),
        offer_s=spec.offer_minutes * 60 or offer_s,
        schedule_s=spec.schedule_hours * 3600 or schedule_s,
        max_offers=spec.max_offers or max_offers,
        notify=notify,
    )
    place = discharge_location(event) or home
    return order_bundle(order, patient, place, authored)


def order_from_bundle(bundle: JSONObject, order_id: str, patient_key: str, placed_by: str) -> Order:
    """The order a desk delivery carries; DeliveryError (permanent) when it is not one."""
    sr, params = resource_of(bundle, "ServiceRequest"), resource_of(bundle, "Parameters")
    if not sr or not params:
        raise DeliveryError("not a logistics order: no ServiceRequest and Parameters", permanent=True)
    values: dict[str, list[Any]] = {}
    for p in params.get("parameter", []):
        values.setdefault(str(p.get("name")), []).append(p.get("valueString", p.get("valueDecimal")))

    def one(name: str) -> Any:
        return values.get(name, [""])[0]

    try:
        service, capability = str(sr["code"]["coding"][0]["code"]).split(":", 1)
        period = sr["occurrencePeriod"]
        return Order(
            id=order_id, patient_key=patient_key, service=service, capability=capability, payer=str(one("payer")),
            zip=str(one("zip")), county=str(one("county")), window_start=str(period["start"]),
            window_end=str(period["end"]), offer_s=float(one("offer-seconds")),
            schedule_s=float(one("schedule-seconds")), max_offers=int(one("max-offers")),
            notify=tuple(str(v) for v in values.get("notify", [])), placed_by=placed_by, resource=bundle,
        )  # fmt: skip
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        raise DeliveryError(f"not a logistics order: {type(exc).__name__}", permanent=True) from exc


def _problems(body: dict[str, Any], directory: dict[str, Recipient]) -> list[str]:
    found = []
    service, capability = body.get("service"), body.get("capability")
    if service not in DEFAULTS:
        found.append(f"service must be one of {', '.join(DEFAULTS)}")
    elif capability not in CAPABILITIES[str(service)]:
        found.append(f"capability must be one of {', '.join(CAPABILITIES[str(service)])} for {service}")
    if not isinstance(body.get("patient_key"), str) or "|" not in str(body.get("patient_key")):
        found.append("patient_key must be a patient key, e.g. RGH|MRN100234")
    if not re.fullmatch(r"[0-9]{5}", str(body.get("zip", ""))):
        found.append("zip must be the 5-digit ZIP code of the pickup or delivery address")
    window: dict[str, Any] = body["window"] if isinstance(body.get("window"), dict) else {}
    try:
        start, end = moment(str(window["start"])), moment(str(window["end"]))
        if start.tzinfo is None or end.tzinfo is None or start >= end:
            found.append("window.start must be before window.end, both with a UTC offset")
    except (KeyError, ValueError):
        found.append("window must be {start, end}: ISO 8601 date-times with a UTC offset")
    notify = body.get("notify", [])
    if not isinstance(notify, list) or any(n not in directory for n in notify):
        found.append("notify must list directory recipient ids (the care team told of each step)")
    for name in ("offer_minutes", "schedule_hours", "max_offers"):
        if name in body and (not isinstance(body[name], int | float) or body[name] <= 0):
            found.append(f"{name} must be a positive number")
    return found


def order_request(body: Any, directory: dict[str, Recipient], placed_by: str, authored: str) -> Order | list[str]:
    """An order placed by hand (HTTP API, CLI), or every problem of the request."""
    if not isinstance(body, dict):
        return ["the body must be a JSON object"]
    problems = _problems(body, directory)
    if problems:
        return problems
    service = str(body["service"])
    offer_s, schedule_s, max_offers = DEFAULTS[service]
    window = body["window"]
    key = "|".join(str(body[k]) for k in ("patient_key", "service", "capability")) + f"|{window['start']}"
    order = Order(
        id=str(body.get("id") or hashlib.sha256(f"manual|{key}".encode()).hexdigest()[:32]),
        patient_key=str(body["patient_key"]),
        service=service,
        capability=str(body["capability"]),
        payer=str(body.get("payer", "")),
        zip=str(body["zip"]),
        county=str(body.get("county", "")),
        window_start=str(window["start"]),
        window_end=str(window["end"]),
        offer_s=float(body.get("offer_minutes", 0)) * 60 or offer_s,
        schedule_s=float(body.get("schedule_hours", 0)) * 3600 or schedule_s,
        max_offers=int(body.get("max_offers", 0)) or max_offers,
        notify=tuple(str(n) for n in body.get("notify", [])),
        placed_by=placed_by,
    )
    address = {"line": [str(body.get("address", ""))], "postalCode": order.zip, "district": order.county}
    patient = {"resourceType": "Patient", "identifier": [{"system": PATIENT_SYSTEM, "value": order.patient_key}],
               "address": [address]}  # fmt: skip
    place = str(body.get("place") or body.get("address") or "")
    return replace(order, resource=order_bundle(order, patient, place, authored))
