"""Turn a routing decision into Delivery records (pure).

``plan_action`` is the per-(event, recipient, action) step: one planned action
in, one Delivery out, carrying the rule, the map version and the reason. A
later stage (consent) can wrap it without knowing how payloads are built.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from carehub.core.payload import Payload
from carehub.core.records import CareEvent, Delivery, JSONObject
from carehub.streams.corrections import cancel_task_bundle
from carehub.streams.forward import forward_message
from carehub.streams.logistics.place import resolve_order
from carehub.streams.notify import Hub, notification_bundle
from carehub.streams.packet.careplan import revocation_message
from carehub.streams.packet.document import packet_document, packet_message
from carehub.streams.referrals import TASK_IDENTIFIER, TaskRequest, task_bundle
from carehub.streams.routing.decide import PlannedAction, RoutingDecision
from carehub.streams.routing.match import diagnosis_codes
from carehub.streams.routing.sdoh import UNSPECIFIED, categories

FHIR_JSON = "application/fhir+json"
HL7V2 = "application/hl7-v2"


def idempotency_key(event_id: str, recipient_id: str, action: str) -> str:
    """Stable for (event, recipient, action): the same after retries and restarts."""
    return hashlib.sha256(f"{event_id}|{recipient_id}|{action}".encode()).hexdigest()[:32]


def action_key(planned: PlannedAction) -> str:
    """``notify``, ``forward``, ``packet``, or ``task:<code>[:<category>]`` (two tasks for one owner differ)."""
    spec = planned.spec
    if planned.corrects:
        return f"correct:{planned.corrects}"
    if spec is not None and spec.order is not None:
        return spec.key
    if spec is None or planned.action != "task":
        return planned.action
    return f"task:{spec.task}" + (f":{planned.category}" if planned.category else "")


def task_request(event: CareEvent, planned: PlannedAction, key: str) -> TaskRequest:
    assert planned.spec is not None
    spec = planned.spec
    category = planned.category
    if spec.task == "sdoh-referral" and not category:
        category = next(iter(categories(diagnosis_codes(event))), UNSPECIFIED)
    part_of = idempotency_key(event.event_id, planned.recipient.id, f"task:{spec.part_of}") if spec.part_of else ""
    return TaskRequest(spec.task, planned.recipient, key, spec.due, category, part_of, event.patient_key)


def task_requests(event: CareEvent, decision: RoutingDecision) -> list[TaskRequest]:
    """The follow-up tasks a decision plans (not corrections): a packet's CarePlan lists them."""
    return [
        task_request(event, p, idempotency_key(event.event_id, p.recipient.id, action_key(p)))
        for p in decision.planned
        if p.action == "task" and not p.corrects and p.spec is not None
    ]


def _payload(
    event: CareEvent,
    planned: PlannedAction,
    hub: Hub,
    key: str,
    now: str,
    tasks: Sequence[TaskRequest],
    orders: Sequence[JSONObject],
) -> tuple[str, JSONObject]:
    recipient = planned.recipient
    if planned.action == "packet":
        to, name = recipient.endpoint, recipient.name
        if planned.corrects:  # a cancelled discharge: its CarePlan is revoked
            return FHIR_JSON, revocation_message(event, hub=hub, destination=to, recipient_name=name, key=key,
                                                 timestamp=now)  # fmt: skip
        document = packet_document(event, hub=hub, key=key, timestamp=now, tasks=tasks, orders=orders)
        return FHIR_JSON, packet_message(document, hub=hub, destination=to, recipient_name=name, key=key, timestamp=now)
    if planned.action == "forward":
        return HL7V2, {"hl7": forward_message(event, key[:20], now)}
    if planned.corrects and planned.action == "task":
        return FHIR_JSON, cancel_task_bundle(planned.corrects, event, system=TASK_IDENTIFIER, timestamp=now)
    if planned.action == "task":
        return FHIR_JSON, task_bundle(event, task_request(event, planned, key), hub=hub, timestamp=now)
    if planned.action == "order" and planned.spec is not None and planned.spec.order is not None:
        order = planned.spec.order
        return FHIR_JSON, resolve_order(event, order, key, planned.notify, planned.anchor, event.occurred_at or now)
    bundle = notification_bundle(
        event, hub=hub, destination=recipient.endpoint, recipient_name=recipient.name, key=key, timestamp=now
    )
    return FHIR_JSON, bundle


def plan_action(
    event: CareEvent,
    planned: PlannedAction,
    map_version: str,
    hub: Hub,
    now: str,
    tasks: Sequence[TaskRequest] = (),
    orders: Sequence[JSONObject] = (),
) -> Delivery:
    """The Delivery for one planned (recipient, action), with its reason.

    ``tasks``: the follow-up tasks of the same decision (``task_requests``), which a packet lists, and
    ``orders`` its logistics orders (``order_requests``: transport, DME, home health).
    """
    recipient = planned.recipient
    key = idempotency_key(event.event_id, recipient.id, action_key(planned))
    content_type, payload = _payload(event, planned, hub, key, now, tasks, orders)
    if event.attributes.get("redacted") and content_type == FHIR_JSON:  # R + NORDSCLCD travel with the bundle
        payload = {**payload, "meta": {**payload.get("meta", {}), "security": list(event.labels)}}
    return Delivery(
        delivery_id=key,
        idempotency_key=key,
        event_id=event.event_id,
        patient_key=event.patient_key,
        recipient_id=recipient.id,
        action=planned.action,
        channel=recipient.channel,
        endpoint=recipient.endpoint,
        content_type=content_type,
        payload=Payload(payload),
        rule_id=planned.rule_id,
        map_version=map_version,
        reason=planned.reason,
        corrects=planned.corrects,
    )


def plan_deliveries(event: CareEvent, decision: RoutingDecision, hub: Hub, now: str) -> list[Delivery]:
    """One Delivery per planned action: notify, task, forward and packet."""
    tasks = task_requests(event, decision)
    planned = {id(p): plan_action(event, p, decision.map_version, hub, now) for p in decision.planned
               if p.action != "packet" or p.corrects}  # fmt: skip
    orders = order_requests(list(planned.values()))
    return [planned.get(id(p)) or plan_action(event, p, decision.map_version, hub, now, tasks, orders)
            for p in decision.planned]  # fmt: skip


def order_requests(deliveries: Sequence[Delivery]) -> list[JSONObject]:
    """The ServiceRequests of the logistics orders among ``deliveries`` (id: the order's delivery id)."""
    found = []
    for d in deliveries:
        if d.action == "order" and not d.corrects:
            request = next((e["resource"] for e in d.payload.get("entry", [])
                            if e.get("resource", {}).get("resourceType") == "ServiceRequest"), None)  # fmt: skip
            if request is not None:
                found.append({**request, "id": d.delivery_id})
    return found
