"""Pure routing decisions: which rules match an event, whom they reach and how, with reasons.

Every rule is evaluated. A matching rule's actions are resolved to recipients
(fixed, message content, rosters or service category); each (recipient,
action) is planned once, by the first rule that reaches it. Everything that
did not happen is recorded with its reason: rules that did not match, targets
that could not be resolved, recipients that were resolved but do not apply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from carehub.core.records import CareEvent
from carehub.streams.referrals import KINDS, due_at
from carehub.streams.routing.load import ACTION_FORMATS
from carehub.streams.routing.match import evaluate
from carehub.streams.routing.model import LOGISTICS_DESK, Action, Due, Recipient, RoutingMap, Rule
from carehub.streams.routing.resolve import Resolution, Unresolved, is_rostered_with, resolve
from carehub.streams.signals import Sent


@dataclass(frozen=True, slots=True)
class PlannedAction:
    rule_id: str
    action: str
    recipient: Recipient
    reason: str
    via: str = "fixed"
    spec: Action | None = None
    category: str = ""
    #: A correction: the delivery id of the original it corrects (``correct: received``).
    corrects: str = ""
    #: An order: the care team told of each step (PCP, care manager), and the instant its window counts from.
    notify: tuple[str, ...] = ()
    anchor: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return self.recipient.id, self.spec.key if self.spec else self.action, self.category or self.corrects


@dataclass(frozen=True, slots=True)
class SkippedRule:
    rule_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class MatchedRule:
    rule_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class UnresolvedTarget:
    rule_id: str
    action: str
    target: str
    reason: str


@dataclass(frozen=True, slots=True)
class NotApplied:
    """A recipient was resolved but does not get this action, and why."""

    rule_id: str
    action: str
    recipient_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    event_id: str
    map_version: str
    planned: tuple[PlannedAction, ...]
    skipped: tuple[SkippedRule, ...]
    matched: tuple[MatchedRule, ...] = ()
    unresolved: tuple[UnresolvedTarget, ...] = ()
    not_applied: tuple[NotApplied, ...] = ()
    flags: tuple[str, ...] = field(default=())


def _refusal(event: CareEvent, routing_map: RoutingMap, action: Action, found: Resolution) -> str | None:
    recipient = found.recipient
    if ACTION_FORMATS[action.type] not in recipient.formats:
        return f"does not accept {ACTION_FORMATS[action.type]} ({action.type})"
    if action.type == "forward" and recipient.channel != "mllp":
        return f"forward needs an mllp recipient, this one uses {recipient.channel}"
    if action.type == "forward" and not event.source_hl7:
        return "no original HL7v2 text to forward (the event did not come from HL7v2)"
    if recipient.rostered_only and not is_rostered_with(event, routing_map, recipient.id):
        return "receives rostered patients only; no roster attributes this patient to it"
    return None


class _Collector:
    def __init__(self) -> None:
        self.planned: dict[tuple[str, str, str], PlannedAction] = {}
        self.unresolved: list[UnresolvedTarget] = []
        self.not_applied: list[NotApplied] = []

    def correct(self, routing_map: RoutingMap, rule: Rule, action: Action, why: str, received: Sequence[Sent]) -> None:
        """One planned correction per original the recipient was sent (``correct: received``)."""
        for original in received:
            recipient = routing_map.recipients.get(original.recipient_id)
            if original.recipient_id == LOGISTICS_DESK.id:  # the desk cancels the visit's orders
                recipient = LOGISTICS_DESK
            if recipient is None:
                why_not = f"{original.recipient_id} received the original but is no longer in the directory"
                self.unresolved.append(UnresolvedTarget(rule.id, action.key, action.to, why_not))
                continue
            reason = f"rule {rule.id} matched ({why}); {recipient.id} was sent the original ({original.action})"
            item = PlannedAction(rule.id, original.action, recipient, reason, "received", action, "",
                                 original.delivery_id)  # fmt: skip
            self.planned.setdefault(item.key, item)

    def add(self, event: CareEvent, routing_map: RoutingMap, rule: Rule, action: Action, why: str) -> None:
        for found in resolve(event, routing_map, action.to):
            if isinstance(found, Unresolved):
                self.unresolved.append(UnresolvedTarget(rule.id, action.key, found.target, found.reason))
                continue
            refusal = _refusal(event, routing_map, action, found)
            if refusal is not None:
                self.not_applied.append(NotApplied(rule.id, action.key, found.recipient.id, refusal))
                continue
            reason = f"rule {rule.id} matched ({why}); recipient via {found.via}"
            item = PlannedAction(rule.id, action.type, found.recipient, reason, found.via, action, found.category)
            earlier = self.planned.get(item.key)
            if earlier is not None:
                self.not_applied.append(
                    NotApplied(rule.id, action.key, found.recipient.id, f"already planned by rule {earlier.rule_id}")
                )
                continue
            self.planned[item.key] = item

    def anchor_orders(self, event: CareEvent, routing_map: RoutingMap) -> None:
        """Give each planned order its care team and the instant its window counts from (or unresolve it)."""
        team = [
            found.recipient.id
            for role in ("attributed:pcp", "attributed:care-manager")
            for found in resolve(event, routing_map, role)
            if isinstance(found, Resolution)
        ]
        for key, item in list(self.planned.items()):
            order = item.spec.order if item.spec is not None else None
            if order is None:
                continue
            anchor = event.occurred_at
            if order.at == "follow-up":
                spec = next((p.spec for p in self.planned.values() if p.action == "task" and p.spec is not None
                             and p.spec.task == order.task), None)  # fmt: skip
                if spec is None:
                    why = f"no {order.task} task is planned for this event to time the order from"
                    self.unresolved.append(UnresolvedTarget(item.rule_id, order_key(item), item.recipient.id, why))
                    del self.planned[key]
                    continue
                anchor = due_at(event.occurred_at, spec.due or KINDS[order.task].due if order.task in KINDS else
                                spec.due or Due(days=7))  # fmt: skip
            self.planned[key] = replace(item, notify=tuple(dict.fromkeys(team)), anchor=anchor)


def order_key(item: PlannedAction) -> str:
    return item.spec.key if item.spec is not None else item.action


def decide(
    event: CareEvent,
    routing_map: RoutingMap,
    flags: frozenset[str] = frozenset(),
    received: Sequence[Sent] = (),
) -> RoutingDecision:
    """Evaluate every rule for ``event`` given the patient's care-coordination ``flags``.

    ``received``: for a correction, the deliveries it corrects (streams.corrections.originals).
    """
    collector = _Collector()
    skipped: list[SkippedRule] = []
    matched: list[MatchedRule] = []
    for rule in routing_map.rules:
        holds, why = evaluate(rule.when, event, flags)
        if not holds:
            skipped.append(SkippedRule(rule.id, why))
            continue
        matched.append(MatchedRule(rule.id, why))
        for action in rule.actions:
            if action.type == "correct":
                collector.correct(routing_map, rule, action, why, received)
            else:
                collector.add(event, routing_map, rule, action, why)
    collector.anchor_orders(event, routing_map)
    return RoutingDecision(
        event.event_id,
        routing_map.version,
        tuple(collector.planned.values()),
        tuple(skipped),
        tuple(matched),
        tuple(collector.unresolved),
        tuple(collector.not_applied),
        tuple(sorted(flags)),
    )
