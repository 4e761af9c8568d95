"""The Subscription resource for a configured subscription (pure): R4 Backport or R5."""

from __future__ import annotations

from typing import Any

from carehub.streams.subscriptions.config import SourceConfig, SubscriptionConfig

BP = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
CHANNEL_TYPES = "http://terminology.hl7.org/CodeSystem/subscription-channel-type"


def _r4(sub: SubscriptionConfig) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Subscription",
        "meta": {"profile": [f"{BP}backport-subscription"]},
        "status": "requested",
        "reason": f"carehub: {sub.name}",
        "criteria": sub.topic,
        "channel": {
            "extension": [{"url": f"{BP}backport-heartbeat-period", "valueUnsignedInt": sub.heartbeat_period_s}],
            "type": "rest-hook",
            "endpoint": sub.endpoint,
            "payload": "application/fhir+json",
            "_payload": {"extension": [{"url": f"{BP}backport-payload-content", "valueCode": sub.payload}]},
            "header": [f"{sub.header}: {sub.secret}"],
        },
    }
    if sub.filters:
        resource["_criteria"] = {
            "extension": [{"url": f"{BP}backport-filter-criteria", "valueString": f} for f in sub.filters]
        }
    return resource


def _filter_by(expression: str) -> dict[str, str]:
    """``Encounter?patient=Patient/1`` -> an R5 filterBy (first parameter)."""
    resource_type, _, query = expression.partition("?")
    name, _, value = query.partition("=")
    return {"resourceType": resource_type, "filterParameter": name, "value": value}


def _r5(sub: SubscriptionConfig) -> dict[str, Any]:
    return {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": f"carehub: {sub.name}",
        "topic": sub.topic,
        "filterBy": [_filter_by(f) for f in sub.filters],
        "channelType": {"system": CHANNEL_TYPES, "code": "rest-hook"},
        "endpoint": sub.endpoint,
        "parameter": [{"name": sub.header, "value": sub.secret}],
        "heartbeatPeriod": sub.heartbeat_period_s,
        "contentType": "application/fhir+json",
        "content": sub.payload,
    }


def subscription_resource(source: SourceConfig, sub: SubscriptionConfig) -> dict[str, Any]:
    return _r5(sub) if source.fhir_version == "r5" else _r4(sub)
