"""§2.31: what a Part 2 consent must carry; an empty purpose or action permits nothing."""

from __future__ import annotations

from dataclasses import replace

import pytest

from carehub.streams.consent.codes import ACT_CODE, PART2, coding
from carehub.streams.consent.decide import DENY, PERMIT, Disclosure, decide
from carehub.streams.consent.model import IncompleteConsentError, parse_consent, part2_deficiencies
from tests.consent.consents import consent

PART2_LABELS = [coding(ACT_CODE, PART2)]
PCP = Disclosure("pcp-riverside", "pcp", "notify", "TREAT")


def test_a_complete_consent_has_no_deficiency() -> None:
    assert part2_deficiencies(consent(named=("pcp-riverside",))) == []


def test_every_missing_element_is_named_at_once() -> None:
    bare = {"resourceType": "Consent", "id": "x", "status": "active", "provision": {"type": "permit"},
            "policyRule": {"coding": [{"code": PART2}]}}  # fmt: skip
    with pytest.raises(IncompleteConsentError) as caught:
        parse_consent(bare)
    assert [path for path, _ in caught.value.missing] == [
        "Consent.patient.identifier", "Consent.organization", "Consent.provision.actor", "Consent.provision.purpose",
        "Consent.provision.action", "Consent.provision.period.end", "Consent.dateTime", "Consent.sourceAttachment",
    ]  # fmt: skip


def test_a_revocation_is_accepted_however_incomplete() -> None:
    revoked = {**consent(named=("pcp-riverside",)), "status": "inactive"}
    del revoked["sourceAttachment"]
    assert parse_consent(revoked).status == "inactive"


def test_an_empty_purpose_or_no_disclose_action_permits_nothing() -> None:
    """Consents read from elsewhere (an older topic record) are judged the same way: empty is not "any"."""
    directive = parse_consent(consent(named=("pcp-riverside",)))
    assert decide(PART2_LABELS, PCP, [directive], "2026-11-01").outcome == PERMIT
    no_purpose = replace(directive, provision=replace(directive.provision, purposes=()))
    found = decide(PART2_LABELS, PCP, [no_purpose], "2026-11-01")
    assert found.outcome == DENY and "names no purpose" in found.reason
    no_action = replace(directive, provision=replace(directive.provision, actions=()))
    found = decide(PART2_LABELS, PCP, [no_action], "2026-11-01")
    assert found.outcome == DENY and "disclose" in found.reason
