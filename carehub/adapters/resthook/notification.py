"""Read a subscription notification Bundle (pure): R4 Backport or R5.

R4 Backport (hl7.fhir.uv.subscriptions-backport): Bundle.type ``history``,
entry[0] a ``Parameters`` (backport-subscription-status-r4) whose
``events-since-subscription-start`` and ``event-number`` are strings; every
entry carries a ``request``. R5: Bundle.type ``subscription-notification``
(some published examples say ``history``), entry[0] a ``SubscriptionStatus``
with integer counters. Payloads: empty (no focus), id-only (focus, entries
without resources) and full-resource (focus and resources).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from carehub.adapters.resthook.errors import InvalidJsonError, NotificationError, WrongResourceTypeError

KINDS = frozenset({"handshake", "heartbeat", "event-notification", "query-status", "query-event"})
_BUNDLE_TYPES = frozenset({"history", "subscription-notification"})


@dataclass(frozen=True, slots=True)
class NotificationEvent:
    number: int | None
    timestamp: str = ""
    focus: str = ""
    additional_context: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SubscriptionStatus:
    """What the status resource (Parameters or SubscriptionStatus) says."""

    fhir_version: str
    kind: str
    status: str
    subscription_ref: str
    topic: str
    events_since_start: int | None
    events: tuple[NotificationEvent, ...]


@dataclass(frozen=True, slots=True)
class Notification:
    status: SubscriptionStatus
    bundle: dict[str, Any]
    #: full URLs (and ``Type/id`` forms) of the resources the Bundle carries.
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def event_numbers(self) -> list[int]:
        return [e.number for e in self.status.events if e.number is not None]


def _int(value: Any, what: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise NotificationError(f"{what} is not an integer") from None
    if number < 0:
        raise NotificationError(f"{what} is negative")
    return number


def _params(parameter: list[Any]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for item in parameter:
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            found.setdefault(item["name"], []).append(item)
    return found


def _value(items: list[dict[str, Any]] | None, *keys: str) -> Any:
    for item in items or []:
        for key in keys:
            if key in item:
                return item[key]
    return None


def _ref(value: Any) -> str:
    return str(value.get("reference", "")) if isinstance(value, dict) else ""


def _r4_event(part: list[Any], index: int) -> NotificationEvent:
    p = _params(part)
    contexts = tuple(_ref(i.get("valueReference")) for i in p.get("additional-context", []))
    return NotificationEvent(
        number=_int(
            _value(p.get("event-number"), "valueString", "valueInteger"), f"notification-event {index} event-number"
        ),
        timestamp=str(_value(p.get("timestamp"), "valueInstant") or ""),
        focus=_ref(_value(p.get("focus"), "valueReference")),
        additional_context=tuple(c for c in contexts if c),
    )


def _r4_status(resource: dict[str, Any]) -> SubscriptionStatus:
    parameter = resource.get("parameter")
    if not isinstance(parameter, list):
        raise NotificationError("the status Parameters has no parameter list")
    p = _params(parameter)
    events = tuple(_r4_event(item.get("part") or [], i) for i, item in enumerate(p.get("notification-event", [])))
    return SubscriptionStatus(
        fhir_version="r4-backport",
        kind=str(_value(p.get("type"), "valueCode") or ""),
        status=str(_value(p.get("status"), "valueCode") or ""),
        subscription_ref=_ref(_value(p.get("subscription"), "valueReference")),
        topic=str(_value(p.get("topic"), "valueCanonical", "valueUri") or ""),
        events_since_start=_int(
            _value(p.get("events-since-subscription-start"), "valueString", "valueInteger", "valueUnsignedInt"),
            "events-since-subscription-start",
        ),
        events=events,
    )


def _r5_status(resource: dict[str, Any]) -> SubscriptionStatus:
    events = tuple(
        NotificationEvent(
            number=_int(e.get("eventNumber"), f"notificationEvent {i} eventNumber"),
            timestamp=str(e.get("timestamp") or ""),
            focus=_ref(e.get("focus")),
            additional_context=tuple(_ref(c) for c in e.get("additionalContext") or [] if _ref(c)),
        )
        for i, e in enumerate(resource.get("notificationEvent") or [])
        if isinstance(e, dict)
    )
    return SubscriptionStatus(
        fhir_version="r5",
        kind=str(resource.get("type") or ""),
        status=str(resource.get("status") or ""),
        subscription_ref=_ref(resource.get("subscription")),
        topic=str(resource.get("topic") or ""),
        events_since_start=_int(resource.get("eventsSinceSubscriptionStart"), "eventsSinceSubscriptionStart"),
        events=events,
    )


def read_status(resource: Any) -> SubscriptionStatus:
    """The status of a Parameters (R4 Backport) or SubscriptionStatus (R5) resource."""
    kind = resource.get("resourceType") if isinstance(resource, dict) else None
    if kind == "Parameters":
        status = _r4_status(resource)
    elif kind == "SubscriptionStatus":
        status = _r5_status(resource)
    else:
        raise WrongResourceTypeError(f"the first entry must be Parameters or SubscriptionStatus, not {str(kind)[:40]}")
    if status.kind not in KINDS:
        raise NotificationError(f"notification type {status.kind[:40]!r} is not one of {sorted(KINDS)}")
    if not status.subscription_ref:
        raise NotificationError("the status names no subscription")
    return status


def _entries(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise NotificationError("the Bundle has no entries; entry 0 must hold the subscription status")
    return entries


def _resources(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for entry in entries[1:]:
        resource = entry.get("resource")
        if not isinstance(resource, dict):
            continue
        if isinstance(entry.get("fullUrl"), str):
            found[entry["fullUrl"]] = resource
        if "resourceType" in resource and "id" in resource:
            found[f"{resource['resourceType']}/{resource['id']}"] = resource
    return found


def read_bundle(bundle: Any) -> Notification:
    """Read a decoded notification Bundle; raise a NotificationError saying what is wrong."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        found = bundle.get("resourceType") if isinstance(bundle, dict) else type(bundle).__name__
        raise WrongResourceTypeError(f"expected a Bundle, got {str(found)[:40]}")
    if bundle.get("type") not in _BUNDLE_TYPES:
        raise NotificationError(f"Bundle.type must be one of {sorted(_BUNDLE_TYPES)}")
    entries = _entries(bundle)
    status = read_status(entries[0].get("resource"))
    if status.fhir_version == "r4-backport":
        missing = [i for i, e in enumerate(entries) if not isinstance(e.get("request"), dict)]
        if missing:
            raise NotificationError(f"R4 notification entries must carry a request; entry {missing[0]} has none")
    return Notification(status=status, bundle=bundle, resources=_resources(entries))


def parse_notification(body: bytes) -> Notification:
    """Decode and read a posted notification."""
    try:
        bundle = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidJsonError(f"the body is not valid JSON (at byte {exc.pos})") from None
    return read_bundle(bundle)
