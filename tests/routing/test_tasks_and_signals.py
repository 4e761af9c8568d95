"""Referral task bundles (Gravity pattern, TCM due dates) and the per-patient signals."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from carehub.core.records import CareEvent
from carehub.mappings import convert_text
from carehub.streams.notify import Hub
from carehub.streams.plan import plan_deliveries
from carehub.streams.referrals import add_business_days
from carehub.streams.routing.decide import decide
from carehub.streams.routing.load import load_routing_map
from carehub.streams.signals import PatientState, observe, signals
from tests.conftest import CONFIG, FEED
from tests.streams.events import care_event

HUB = Hub(base_url="https://hub.example.org/fhir")


def _okafor_discharge() -> CareEvent:
    text = (FEED / "07-a03-discharge-okafor.hl7").read_text()
    return replace(convert_text(text, validate=False).event, source_hl7=text)


def test_business_days_skip_the_weekend() -> None:
    friday = datetime(2026, 11, 6, 10, 0)
    assert add_business_days(friday, 2) == datetime(2026, 11, 10, 10, 0)
    assert add_business_days(datetime(2026, 11, 4, 10, 0), 2) == datetime(2026, 11, 6, 10, 0)


def test_task_deliveries_are_transaction_bundles_whose_references_resolve() -> None:
    event = _okafor_discharge()
    deliveries = plan_deliveries(event, decide(event, load_routing_map(CONFIG)), HUB, "2026-11-06T16:00:00Z")
    tasks = {d.idempotency_key: d for d in deliveries if d.action == "task"}
    assert len(tasks) == 4
    for d in tasks.values():
        bundle = d.payload.value
        assert bundle["type"] == "transaction" and d.content_type == "application/fhir+json"
        assert all(e["request"]["method"] == "POST" for e in bundle["entry"])
        urls = {e["fullUrl"] for e in bundle["entry"]}
        refs = _refs(bundle)
        assert refs and refs <= urls, refs - urls
        found = {e["resource"]["resourceType"]: e["resource"] for e in bundle["entry"]}
        task = found["Task"]
        for field in ("requester", "owner", "focus", "for", "authoredOn", "restriction", "businessStatus"):
            assert task[field], field
        assert task["intent"] == "order" and task["code"]["coding"][0]["code"] == "fulfill"
        assert task["focus"]["reference"] == next(
            e["fullUrl"] for e in bundle["entry"] if e["resource"] is found["ServiceRequest"]
        )
        assert d.reason.startswith(f"rule {d.rule_id} matched")
    by_code = {t.payload["entry"][-2]["resource"]["code"]["coding"][0]["code"]: t for t in tasks.values()}
    contact = by_code["tcm-contact"].payload["entry"][-1]["resource"]
    assert contact["restriction"]["period"]["end"] == "2026-11-10T10:00:00-05:00", "Friday + 2 business days"
    visit = by_code["tcm-visit"].payload["entry"][-1]["resource"]
    assert visit["restriction"]["period"]["end"] == "2026-11-20T10:00:00-05:00"
    assert visit["partOf"][0]["identifier"]["value"] == by_code["tcm-contact"].idempotency_key
    referral = by_code["sdoh-referral"].payload["entry"]
    request = referral[-2]["resource"]
    assert request["category"][0]["coding"][0]["code"] == "food-insecurity"
    assert request["reasonCode"][0]["coding"][0]["code"] == "Z59.41"
    assert referral[-1]["resource"]["meta"]["profile"][0].endswith("SDOHCC-TaskForReferralManagement")


def test_readmission_within_30_days_of_a_discharge() -> None:
    discharge = care_event("discharge", occurred_at="2026-11-01T10:00:00Z")
    state = observe(PatientState(), discharge, [])
    assert "readmission" in signals(state, care_event("admit", occurred_at="2026-11-20T10:00:00Z")).flags
    assert "readmission" not in signals(state, care_event("admit", occurred_at="2026-12-05T10:00:00Z")).flags
    assert signals(
        PatientState.from_dict(state.to_dict()), care_event("admit", occurred_at="2026-11-02T00:00:00Z")
    ).flags


def test_three_ed_visits_in_60_days_make_a_high_utilizer() -> None:
    state = PatientState()
    for day, encounter in (("2026-09-01", "e1"), ("2026-10-01", "e2")):
        event = care_event("register", "EMER", occurred_at=f"{day}T10:00:00Z", encounter_id=encounter)
        assert "ed-high-utilizer" not in signals(state, event).flags
        state = observe(state, event, [])
    third = care_event("register", "EMER", occurred_at="2026-10-20T10:00:00Z", encounter_id="e3")
    assert "ed-high-utilizer" in signals(state, third).flags
    late = care_event("register", "EMER", occurred_at="2026-11-15T10:00:00Z", encounter_id="e4")
    assert "ed-high-utilizer" not in signals(state, late).flags, "the first visit is older than 60 days"


def test_open_follow_up_tasks_are_remembered() -> None:
    event = _okafor_discharge()
    deliveries = plan_deliveries(event, decide(event, load_routing_map(CONFIG)), HUB, "2026-11-06T16:00:00Z")
    from carehub.streams.agents.route import opened_tasks

    state = observe(PatientState(), event, opened_tasks(deliveries))
    assert {t.code for t in state.open_tasks} == {"tcm-contact", "tcm-visit", "med-rec", "sdoh-referral"}
    found = signals(state, care_event("update", occurred_at="2026-11-08T10:00:00Z"))
    assert "open-follow-up" in found.flags


def _refs(value: object) -> set[str]:
    if isinstance(value, dict):
        own = {value["reference"]} if isinstance(value.get("reference"), str) else set()
        return own.union(*(_refs(v) for v in value.values())) if value else own
    if isinstance(value, list):
        return set().union(*(_refs(v) for v in value)) if value else set()
    return set()
