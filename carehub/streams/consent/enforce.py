"""Consent between routing and delivery: every planned action is gated and audited (pure).

For each planned (recipient, action): decide, build the delivery from the
event as it may be disclosed (whole, redacted, or not at all), attach the
§2.32 notice and the consent's scope to Part 2 disclosures, and produce one
AuditEvent per decision. The delivery carries the labels of what it
discloses, so the send-time gate (streams.consent.gate.gate_send) can decide
again on the consents in force when it leaves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from carehub.core.payload import Payload
from carehub.core.records import CareEvent, Delivery, JSONObject
from carehub.streams.consent.audit import audit_event
from carehub.streams.consent.codes import PART2
from carehub.streams.consent.decide import ConsentDecision
from carehub.streams.consent.deps import ConsentDeps
from carehub.streams.consent.emergency import Attestation
from carehub.streams.consent.gate import gate, with_attestation
from carehub.streams.consent.labels import apply_labels, has_label
from carehub.streams.consent.model import ConsentDirective
from carehub.streams.consent.notice import NOTICE, attach_to_bundle, attach_to_hl7, scope
from carehub.streams.consent.policy import NO_PROGRAMS, Policy
from carehub.streams.notify import Hub
from carehub.streams.plan import action_key, idempotency_key, plan_action
from carehub.streams.routing.decide import PlannedAction, RoutingDecision

PlanAction = Callable[[CareEvent, PlannedAction], Delivery]


@dataclass(frozen=True, slots=True)
class Verdict:
    planned: PlannedAction
    decision: ConsentDecision
    delivery: Delivery | None
    audit: JSONObject


def _with_notice(delivery: Delivery, consent: ConsentDirective | None) -> Delivery:
    text = scope(consent) if consent else "Disclosed without patient consent under 42 CFR 2.51 (medical emergency)."
    if "hl7" in delivery.payload:
        return replace(delivery, payload=Payload({"hl7": attach_to_hl7(str(delivery.payload["hl7"]), text)}))
    return replace(delivery, payload=Payload(attach_to_bundle(delivery.payload.value, text)))


def enforce(
    event: CareEvent,
    decision: RoutingDecision,
    plan: PlanAction,
    consents: Iterable[ConsentDirective],
    policy: Policy,
    now: str,
    attestations: Iterable[Attestation] = (),
) -> list[Verdict]:
    """One verdict per planned action, each with its audit record."""
    on_file = [c for c in consents if c.patient_key == event.patient_key]
    by_id = {c.id: c for c in on_file}
    attestations = list(attestations)
    verdicts: list[Verdict] = []
    for planned in decision.planned:
        disclosure = policy.disclosure(event, planned.recipient.id, planned.recipient.kind, planned.action)
        disclosure = with_attestation(disclosure, attestations, event.patient_key, now)
        verdict, allowed = gate(event, disclosure, on_file, now, policy)
        delivery = plan(allowed, planned) if allowed is not None else None
        if delivery is not None and allowed is not None:
            delivery = replace(delivery, labels=list(allowed.labels))
            if has_label(allowed.labels, PART2):
                delivery = _with_notice(delivery, by_id.get(verdict.consent_id))
        delivery_id = idempotency_key(event.event_id, planned.recipient.id, action_key(planned))
        audit = audit_event(verdict, disclosure, event_id=event.event_id, patient_key=event.patient_key,
                            recorded=now, map_version=decision.map_version, delivery_id=delivery_id)  # fmt: skip
        verdicts.append(Verdict(planned, verdict, delivery, audit))
    return verdicts


class Gatekeeper:
    """The route stage's view of consent: labels, the consents on file, and the verdicts."""

    def __init__(self, deps: ConsentDeps | None) -> None:
        self._policy = deps.policy if deps is not None else NO_PROGRAMS
        self._consents = deps.consents if deps is not None else None
        #: The last event labelled and its labelled form: the packet step gates the same event again.
        self._labelled: tuple[CareEvent, CareEvent] | None = None

    def verdicts(self, event: CareEvent, decision: RoutingDecision, hub: Hub, now: str) -> list[Verdict]:
        def plan(allowed: CareEvent, planned: PlannedAction) -> Delivery:
            return plan_action(allowed, planned, decision.map_version, hub, now)

        return self.verdicts_with(event, decision, plan, now)

    def verdicts_with(self, event: CareEvent, decision: RoutingDecision, plan: PlanAction, now: str) -> list[Verdict]:
        """The verdicts with deliveries built by ``plan`` (the packet step lists the decision's tasks)."""
        last = self._labelled
        if last is not None and last[0] is event:
            labelled = last[1]
        else:
            labelled = apply_labels(event, self._policy.registry)
            self._labelled = (event, labelled)
        on_file = self._consents.for_patient(event.patient_key) if self._consents is not None else []
        attested = self._consents.emergencies_for(event.patient_key) if self._consents is not None else []
        return enforce(labelled, decision, plan, on_file, self._policy, now, attested)


__all__ = ["NOTICE", "Gatekeeper", "Verdict", "enforce"]
