"""Turn a routing decision into Delivery records (pure)."""

from __future__ import annotations

import hashlib

from core.records import CareEvent, Delivery
from streams.notify import Hub, notification_bundle
from streams.routing.decide import PlannedAction, RoutingDecision

FHIR_JSON = "application/fhir+json"


def idempotency_key(event_id: str, recipient_id: str, action: str) -> str:
    """Stable for (event, recipient, action): the same after retries and restarts."""
    return hashlib.sha256(f"{event_id}|{recipient_id}|{action}".encode()).hexdigest()[:32]


def _delivery(event: CareEvent, planned: PlannedAction, decision: RoutingDecision, hub: Hub, now: str) -> Delivery:
    recipient = planned.recipient
    key = idempotency_key(event.event_id, recipient.id, planned.action)
    payload = notification_bundle(
        event, hub=hub, destination=recipient.endpoint, recipient_name=recipient.name, key=key, timestamp=now
    )
    return Delivery(
        delivery_id=key,
        idempotency_key=key,
        event_id=event.event_id,
        patient_key=event.patient_key,
        recipient_id=recipient.id,
        action=planned.action,
        channel=recipient.channel,
        endpoint=recipient.endpoint,
        content_type=FHIR_JSON,
        payload=payload,
        rule_id=planned.rule_id,
        map_version=decision.map_version,
    )


def plan_deliveries(event: CareEvent, decision: RoutingDecision, hub: Hub, now: str) -> list[Delivery]:
    """One Delivery per planned notify action (task and forward arrive with the routing issue)."""
    return [_delivery(event, p, decision, hub, now) for p in decision.planned if p.action == "notify"]
