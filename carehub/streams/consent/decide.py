"""Consent decisions for one (event, recipient, action): permit, deny or permit-redacted.

Deny by default for Part 2 data. A permit needs an active 42CFRPart2 consent
in its period whose permit provision names the recipient (or, under the 2024
rule's single TPO consent, its recipient class — CBOs must always be named),
covers the purpose and the data class, and is not excluded by a nested deny.
Counseling-note data never flows. The emergency exception (§2.51) permits
disclosure to a treating provider only under an explicit attestation
(streams.consent.emergency) and is always recorded as such. A permit
provision that names no purpose or no ``disclose`` action permits nothing:
empty never means "any".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from carehub.core.records import JSONObject
from carehub.streams.consent.codes import COUNSELING_NOTES, PART2, TPO_CLASSES
from carehub.streams.consent.labels import has_label
from carehub.streams.consent.model import ConsentDirective, Provision

PERMIT = "permit"
DENY = "deny"
PERMIT_REDACTED = "permit-redacted"
#: Action -> the FHIR data class it discloses.
ACTION_CLASS = {"notify": "Encounter", "task": "ServiceRequest", "forward": "Encounter"}
#: The consentaction code a provision must carry to permit a disclosure.
DISCLOSE = "disclose"


@dataclass(frozen=True, slots=True)
class Disclosure:
    """What would be disclosed, to whom, why."""

    recipient_id: str
    recipient_kind: str
    action: str
    purpose: str
    npis: tuple[str, ...] = ()
    #: An attestation (streams.consent.emergency) covers this patient, recipient and moment.
    emergency: bool = False
    redaction_allowed: bool = False
    #: The id of that attestation, cited by the decision.
    attestation: str = ""


@dataclass(frozen=True, slots=True)
class ConsentDecision:
    outcome: str
    rule: str
    reason: str
    consent_id: str = ""
    attestation: str = ""

    @property
    def discloses(self) -> bool:
        return self.outcome in (PERMIT, PERMIT_REDACTED)


def _in_period(provision: Provision, now: str) -> str | None:
    if provision.start and now < provision.start:
        return f"not in force before {provision.start}"
    if provision.end and now > provision.end:
        return f"expired {provision.end}"
    return None


def _actor_match(provision: Provision, d: Disclosure) -> tuple[str | None, str]:
    """(how the recipient is covered, or None; why not)."""
    if d.recipient_id in provision.recipients or set(d.npis) & set(provision.npis):
        return "named-recipient", ""
    tpo_class = TPO_CLASSES.get(d.recipient_kind)
    if tpo_class and tpo_class in provision.recipient_classes:
        return "tpo-class", ""
    if not tpo_class and provision.recipient_classes:
        return None, f"{d.recipient_kind} recipients must be named; {d.recipient_id} is not"
    return None, f"recipient {d.recipient_id} is not named and its class is not covered"


def _covers(provision: Provision, d: Disclosure) -> bool:
    """Whether a (nested) provision applies to this disclosure."""
    actor, _ = _actor_match(provision, d)
    actors_given = bool(provision.recipients or provision.recipient_classes or provision.npis)
    purpose_ok = not provision.purposes or d.purpose in provision.purposes
    class_ok = not provision.classes or ACTION_CLASS.get(d.action, "") in provision.classes
    return (actor is not None or not actors_given) and purpose_ok and class_ok


def evaluate(consent: ConsentDirective, d: Disclosure, now: str) -> tuple[str | None, str]:
    """(rule that permits, or None; reason)."""
    if not consent.part2:
        return None, f"consent {consent.id} is not a 42 CFR Part 2 consent"
    if not consent.active:
        return None, f"consent {consent.id} is {consent.status} (revoked or not in force)"
    provision = consent.provision
    if provision.type != "permit":
        return None, f"consent {consent.id} denies disclosure"
    period = _in_period(provision, now)
    if period:
        return None, f"consent {consent.id} {period}"
    rule, why = _actor_match(provision, d)
    if rule is None:
        return None, f"consent {consent.id}: {why}"
    if not provision.purposes:
        return None, f"consent {consent.id} names no purpose, so it permits none"
    if d.purpose not in provision.purposes:
        return None, f"consent {consent.id} does not cover purpose {d.purpose} (only {', '.join(provision.purposes)})"
    if DISCLOSE not in provision.actions:
        return None, f"consent {consent.id} does not permit the disclose action"
    wanted = ACTION_CLASS.get(d.action, "")
    if provision.classes and wanted not in provision.classes:
        return None, f"consent {consent.id} does not cover {wanted} data"
    for nested in provision.nested:
        if nested.type == "deny" and _covers(nested, d):
            return None, f"consent {consent.id} has a nested denial covering this disclosure"
    return rule, f"consent {consent.id} permits ({rule.replace('-', ' ')})"


def decide(
    labels: Iterable[JSONObject], d: Disclosure, consents: Iterable[ConsentDirective], now: str
) -> ConsentDecision:
    labels = list(labels)
    if has_label(labels, COUNSELING_NOTES):
        return ConsentDecision(DENY, "counseling-notes", "SUD counseling-note data never flows")
    if not has_label(labels, PART2):
        return ConsentDecision(PERMIT, "not-part2", "no 42 CFR Part 2 data in the event")
    reasons: list[str] = []
    for consent in consents:
        rule, reason = evaluate(consent, d, now)
        if rule is not None:
            return ConsentDecision(PERMIT, rule, reason, consent.id)
        reasons.append(reason)
    if d.emergency and TPO_CLASSES.get(d.recipient_kind) == "treating-providers":
        why = f"medical emergency (§2.51) attested in {d.attestation}: disclosure to a treating provider"
        return ConsentDecision(PERMIT, "emergency-2.51", why, attestation=d.attestation)
    why = "; ".join(reasons) if reasons else "no 42 CFR Part 2 consent on file for the patient"
    if d.redaction_allowed:
        return ConsentDecision(PERMIT_REDACTED, "redacted-no-consent", f"{why}; SUD data and program identity removed")
    return ConsentDecision(DENY, "no-permitting-consent", why)
