"""Pure routing decisions: which rules match an event, and what to do, with reasons."""

from __future__ import annotations

from dataclasses import dataclass

from core.records import CareEvent
from streams.routing.model import Action, Condition, Recipient, RoutingMap, Rule


@dataclass(frozen=True, slots=True)
class PlannedAction:
    rule_id: str
    action: str
    recipient: Recipient
    reason: str


@dataclass(frozen=True, slots=True)
class SkippedRule:
    rule_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    event_id: str
    map_version: str
    planned: tuple[PlannedAction, ...]
    skipped: tuple[SkippedRule, ...]


def _mismatch(condition: Condition, event: CareEvent) -> str | None:
    """Why ``condition`` does not hold for ``event``; None when it holds."""
    checks = (
        ("kind", condition.kinds, event.kind),
        ("facility", condition.facilities, event.facility),
        ("encounter class", condition.encounter_classes, event.encounter_class),
        ("location", condition.locations, event.location),
    )
    for label, accepted, actual in checks:
        if accepted and actual.casefold() not in {a.casefold() for a in accepted}:
            return f"{label} {actual or '(none)'!r} not in {list(accepted)}"
    return None


def _plan(rule: Rule, action: Action, routing_map: RoutingMap) -> PlannedAction | SkippedRule:
    recipient = routing_map.recipients.get(action.recipient_id)
    if recipient is None:
        return SkippedRule(rule.id, f"recipient {action.recipient_id!r} is not in the directory")
    return PlannedAction(rule.id, action.type, recipient, f"rule {rule.id} matched")


def decide(event: CareEvent, routing_map: RoutingMap) -> RoutingDecision:
    """Evaluate every rule; one planned action per (recipient, action) pair, first rule wins."""
    planned: list[PlannedAction] = []
    skipped: list[SkippedRule] = []
    seen: set[tuple[str, str]] = set()
    for rule in routing_map.rules:
        reason = _mismatch(rule.when, event)
        if reason is not None:
            skipped.append(SkippedRule(rule.id, reason))
            continue
        for action in rule.actions:
            outcome = _plan(rule, action, routing_map)
            if isinstance(outcome, SkippedRule):
                skipped.append(outcome)
            elif (outcome.recipient.id, outcome.action) not in seen:
                seen.add((outcome.recipient.id, outcome.action))
                planned.append(outcome)
    return RoutingDecision(event.event_id, routing_map.version, tuple(planned), tuple(skipped))
