"""The consent gate (pure): at plan time on the event, at send time on the delivery.

``gate`` decides when the route stage plans a disclosure and hands on the
event as it may be disclosed. ``gate_send`` decides again, on the current
consents and attestations, every time a delivery is about to leave (first
attempt, retry, a delivery queued behind a retry, a dead-letter replay): a
revocation or an expiry between planning and sending stops it. Both call the
same ``decide``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from carehub.core.records import CareEvent, Delivery, JSONObject
from carehub.streams.consent.codes import COUNSELING_NOTES, PART2
from carehub.streams.consent.decide import DENY, PERMIT, PERMIT_REDACTED, ConsentDecision, Disclosure, decide
from carehub.streams.consent.emergency import Attestation, attested
from carehub.streams.consent.labels import has_label
from carehub.streams.consent.model import ConsentDirective
from carehub.streams.consent.policy import NO_PROGRAMS, Policy
from carehub.streams.consent.redact import redact, redactable


def with_attestation(
    disclosure: Disclosure, attestations: Iterable[Attestation], patient_key: str, now: str
) -> Disclosure:
    """The disclosure marked as an emergency when (and only when) an attestation covers it."""
    found = attested(attestations, patient_key, disclosure.recipient_id, now)
    return replace(disclosure, emergency=found is not None, attestation=found.id if found else "")


def gate(
    event: CareEvent,
    disclosure: Disclosure,
    consents: Iterable[ConsentDirective],
    now: str,
    policy: Policy = NO_PROGRAMS,
) -> tuple[ConsentDecision, CareEvent | None]:
    """The decision and the event to disclose (None when suppressed).

    A permit-redacted decision for a record whose sender is itself a Part 2
    program becomes a denial: nothing can be removed that would make it safe.
    """
    mine = [c for c in consents if c.patient_key == event.patient_key]
    decision = decide(event.labels, disclosure, mine, now)
    if decision.outcome == DENY:
        return decision, None
    if decision.outcome == PERMIT_REDACTED:
        if not redactable(event):
            why = decision.reason.split("; SUD data")[0]
            reason = f"{why}; the sender is a Part 2 program, so redaction cannot help"
            return replace(decision, outcome=DENY, rule="no-permitting-consent", reason=reason), None
        return decision, redact(event, policy.allow_list, policy.registry)
    return decision, event


def disclosed_labels(delivery: Delivery) -> list[JSONObject]:
    """Every security label of what the delivery would disclose: its own, the bundle's, each resource's."""
    found = list(delivery.labels)
    payload = delivery.payload
    if not payload.may_contain(b'"security"'):  # no label anywhere in it: left unread (core.payload)
        return found
    found += [s for s in payload.get("meta", {}).get("security", []) if isinstance(s, dict)]
    for entry in payload.get("entry", []):
        resource = entry.get("resource", {}) if isinstance(entry, dict) else {}
        found += [s for s in resource.get("meta", {}).get("security", []) if isinstance(s, dict)]
    return found


def needs_consent(delivery: Delivery) -> bool:
    labels = disclosed_labels(delivery)
    return has_label(labels, PART2) or has_label(labels, COUNSELING_NOTES)


def gate_send(
    delivery: Delivery,
    disclosure: Disclosure,
    consents: Iterable[ConsentDirective],
    attestations: Iterable[Attestation],
    now: str,
) -> ConsentDecision:
    """The decision for one send of ``delivery``, on the consents and attestations in force ``now``.

    Only a full permit lets Part 2 data leave: the payload is already built, so
    a decision that would now only allow a redacted disclosure suppresses it.
    """
    if not needs_consent(delivery):
        return ConsentDecision(PERMIT, "not-part2", "no 42 CFR Part 2 data in the payload")
    mine = [c for c in consents if c.patient_key == delivery.patient_key]
    decision = decide(
        disclosed_labels(delivery),
        with_attestation(replace(disclosure, redaction_allowed=False), attestations, delivery.patient_key, now),
        mine,
        now,
    )
    if decision.outcome != PERMIT:
        return replace(decision, outcome=DENY, rule=f"send-time:{decision.rule}",
                       reason=f"suppressed at send time: {decision.reason}")  # fmt: skip
    return replace(decision, rule=f"send-time:{decision.rule}")
