"""Property: no Part 2-labelled data reaches a recipient without a permitting consent."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from core.records import CareEvent
from streams.consent.codes import PART2, TPO_CLASSES
from streams.consent.decide import Disclosure
from streams.consent.gate import gate
from streams.consent.labels import Program, Registry, apply_labels
from streams.consent.model import IncompleteConsentError, parse_consent
from tests.consent.consents import consent
from tests.streams.events import care_event

NOW = "2026-11-01"
RECIPIENTS = {"pcp-riverside": "pcp", "rx-main-street": "pharmacy", "payer-acme": "payer", "cbo-food-bank": "cbo"}
REGISTRY = Registry(programs=(
    Program("recovery-center", "Recovery Center", facilities=("RECOVERY",)),
    Program("rgh-sud-unit", "RGH addiction unit", locations=("4W-SUD",)),
))  # fmt: skip

dates = st.sampled_from(["2025-06-01", "2026-06-30", "2026-10-31", "2026-11-02", "2027-12-31"])
consents = st.builds(
    consent,
    cid=st.sampled_from(["c1", "c2", "c3"]),
    status=st.sampled_from(["active", "active", "inactive", "draft"]),
    named=st.lists(st.sampled_from(sorted(RECIPIENTS)), max_size=2).map(tuple),
    classes=st.lists(st.sampled_from(["treating-providers", "health-plans"]), max_size=2).map(tuple),
    purposes=st.lists(st.sampled_from(["TREAT", "HPAYMT", "HOPERAT", "ETREAT"]), min_size=1, max_size=3).map(tuple),
    data_classes=st.lists(st.sampled_from(["Encounter", "ServiceRequest"]), max_size=2).map(tuple),
    start=dates,
    end=dates,
    deny_named=st.lists(st.sampled_from(sorted(RECIPIENTS)), max_size=1).map(tuple),
    part2=st.booleans(),
    patient=st.sampled_from([("urn:carehub:authority:RGH", "MRN1"), ("urn:carehub:authority:RGH", "MRN2")]),
)


@st.composite
def events(draw: st.DrawFn) -> CareEvent:
    facility = draw(st.sampled_from(["RGH", "RECOVERY"]))
    location = draw(st.sampled_from(["4W", "4W-SUD"]))
    codes = draw(st.lists(st.sampled_from(["I21.4", "F10.20", "F11.23", "J18.9"]), max_size=2))
    base = care_event("admit", "IMP", facility=facility, location=location)
    conditions = [{"resourceType": "Condition", "id": f"cond{i}", "subject": {"reference": "Patient/p1"},
                   "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": c}]}}
                  for i, c in enumerate(codes)]  # fmt: skip
    encounter = next(e["resource"] for e in base.bundle["entry"] if e["resource"]["resourceType"] == "Encounter")
    encounter = {
        **encounter,
        "diagnosis": [{"condition": {"reference": f"Condition/cond{i}"}} for i in range(len(codes))],
    }
    location_resource = {"resourceType": "Location", "id": "l1", "name": location}
    organization = {"resourceType": "Organization", "id": "o1", "name": facility}
    entries = [
        e
        for e in base.bundle["entry"]
        if e["resource"]["resourceType"] not in ("Encounter", "Location", "Organization")
    ]
    entries += [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in (location_resource, organization)]
    entries += [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in [encounter, *conditions]]
    attributes = {"diagnoses": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": c} for c in codes]}
    event = replace(base, bundle={**base.bundle, "entry": entries}, attributes=attributes)
    return apply_labels(event, REGISTRY)


def _consent_permits(raw: dict[str, Any], d: Disclosure) -> bool:
    """An independent reading of the raw FHIR Consent: does it permit this disclosure?"""
    provision = raw["provision"]
    actors = {a["reference"]["identifier"]["value"] for a in provision["actor"]}
    denied = {a["reference"]["identifier"]["value"] for p in provision.get("provision", []) for a in p["actor"]}
    named = d.recipient_id in actors
    by_class = TPO_CLASSES.get(d.recipient_kind) in actors
    return (
        raw["status"] == "active"
        and raw["policyRule"]["coding"][0]["code"] == PART2
        and raw["patient"]["identifier"]["value"] == "MRN1"
        and provision["period"]["start"] <= NOW <= provision["period"]["end"]
        and (named or by_class)
        and d.recipient_id not in denied
        and d.purpose in {p["code"] for p in provision["purpose"]}
    )


def _accepted(raw: dict[str, Any]) -> bool:
    try:
        parse_consent(raw)
    except IncompleteConsentError:
        return False
    return True


def _carries_part2(event: CareEvent) -> bool:
    """Part 2-labelled data or Part 2 program identity. (An SUD diagnosis from a general
    facility is HIPAA PHI, labelled SUD but not Part 2, and may flow under HIPAA.)"""
    text = json.dumps(event.bundle)
    return PART2 in text or "4W-SUD" in text or "RECOVERY" in text


@settings(max_examples=400, deadline=None)
@given(
    event=events(),
    raw_consents=st.lists(consents, max_size=3),
    recipient=st.sampled_from(sorted(RECIPIENTS)),
    action=st.sampled_from(["notify", "task"]),
    purpose=st.sampled_from(["TREAT", "HPAYMT", "HOPERAT"]),
    emergency=st.booleans(),
    redaction_allowed=st.booleans(),
)
def test_no_part2_data_without_a_permitting_consent(
    event: CareEvent, raw_consents: list[dict[str, Any]], recipient: str, action: str, purpose: str,
    emergency: bool, redaction_allowed: bool,
) -> None:  # fmt: skip
    d = Disclosure(recipient, RECIPIENTS[recipient], action, purpose, emergency=emergency,
                   redaction_allowed=redaction_allowed)  # fmt: skip
    raw_consents = [c for c in raw_consents if _accepted(c)]  # the hub refuses the rest (§2.31)
    decision, disclosed = gate(event, d, [parse_consent(c) for c in raw_consents], NOW)
    assert decision.reason
    if disclosed is None or not _carries_part2(disclosed):
        return
    emergency_ok = decision.rule == "emergency-2.51" and RECIPIENTS[recipient] in ("pcp", "pharmacy")
    permitted = any(_consent_permits(c, d) for c in raw_consents if c["id"] == decision.consent_id)
    assert emergency_ok or permitted, f"Part 2 data disclosed to {recipient} under {decision}"
    if RECIPIENTS[recipient] == "cbo":
        assert any(recipient in json.dumps(c["provision"]["actor"]) for c in raw_consents), "CBOs must be named"
