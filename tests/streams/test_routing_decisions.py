"""Routing decisions are pure, carry reasons and the map version (the shipped config)."""

from __future__ import annotations

from carehub.streams.routing.decide import decide
from carehub.streams.routing.load import load_routing_map
from tests.conftest import CONFIG
from tests.streams.events import care_event

PCP = {"pcp": [{"type": "Practitioner", "identifiers": [{"system": "", "value": "1234567893"}]}]}
PAYER = {"payers": [{"payors": [{"identifiers": [{"value": "PAYER-ACME"}]}], "plans": []}]}


def test_inpatient_admit_goes_to_the_attributed_pcp_and_payer_by_content() -> None:
    routing = load_routing_map(CONFIG)
    decision = decide(care_event("admit", "IMP", attributes={**PCP, **PAYER}), routing)
    assert [(p.recipient.id, p.action, p.rule_id, p.via) for p in decision.planned] == [
        ("pcp-riverside", "notify", "adt-to-pcp", "content PD1-4 (1234567893)"),
        ("payer-acme", "notify", "inpatient-to-payer", "content IN1 (PAYER-ACME)"),
    ]
    assert decision.map_version == routing.version
    assert decision.unresolved == ()


def test_outpatient_registration_skips_the_payer_and_says_why() -> None:
    decision = decide(care_event("register", "AMB", attributes=PCP), load_routing_map(CONFIG))
    assert [p.recipient.id for p in decision.planned] == ["pcp-riverside"]
    skipped = {s.rule_id: s.reason for s in decision.skipped}
    assert "kind register not in" in skipped["inpatient-to-payer"]


def test_unattributed_patient_is_reported_not_dropped() -> None:
    decision = decide(care_event("admit", "IMP", patient_key="XX|nobody"), load_routing_map(CONFIG))
    assert decision.planned == ()
    assert {(u.rule_id, u.target) for u in decision.unresolved} == {
        ("adt-to-pcp", "attributed:pcp"),
        ("inpatient-to-payer", "attributed:payer"),
    }


def test_update_reaches_nobody_with_a_reason_per_rule() -> None:
    routing = load_routing_map(CONFIG)
    decision = decide(care_event("update", "IMP"), routing)
    assert decision.planned == ()
    assert {s.rule_id for s in decision.skipped} == {r.id for r in routing.rules}
