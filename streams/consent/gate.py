"""The consent gate: decide, then hand on the event as it may be disclosed (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from core.records import CareEvent
from streams.consent.decide import DENY, PERMIT_REDACTED, ConsentDecision, Disclosure, decide
from streams.consent.model import ConsentDirective
from streams.consent.policy import NO_PROGRAMS, Policy
from streams.consent.redact import redact, redactable


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
