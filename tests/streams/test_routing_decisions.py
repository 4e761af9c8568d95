"""Routing decisions are pure, carry reasons and the map version."""

from __future__ import annotations

from streams.routing.decide import decide
from streams.routing.load import load_routing_map
from tests.conftest import CONFIG
from tests.streams.events import care_event


def test_inpatient_admit_goes_to_pcp_and_payer() -> None:
    routing = load_routing_map(CONFIG)
    decision = decide(care_event("admit", "IMP"), routing)
    assert [(p.recipient.id, p.action, p.rule_id) for p in decision.planned] == [
        ("pcp-riverside", "notify", "adt-to-pcp"),
        ("payer-acme", "notify", "inpatient-to-payer"),
    ]
    assert decision.map_version == routing.version


def test_outpatient_registration_skips_the_payer_and_says_why() -> None:
    decision = decide(care_event("register", "AMB"), load_routing_map(CONFIG))
    assert [p.recipient.id for p in decision.planned] == ["pcp-riverside"]
    (skip,) = decision.skipped
    assert skip.rule_id == "inpatient-to-payer"
    assert "kind 'register'" in skip.reason


def test_update_reaches_nobody_with_a_reason_per_rule() -> None:
    decision = decide(care_event("update", "IMP"), load_routing_map(CONFIG))
    assert decision.planned == ()
    assert {s.rule_id for s in decision.skipped} == {"adt-to-pcp", "inpatient-to-payer"}
