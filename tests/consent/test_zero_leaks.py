"""Property: no Part 2 data reaches a recipient without a permitting consent — for every action
(notify, task, forward) and every channel, judged on the bytes as serialized on the wire, at the
moment they are sent, including a send after the consents changed (a retry or a replay)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from carehub.connectors.base import payload_bytes
from carehub.core.records import CareEvent, Delivery
from carehub.streams.consent.codes import PART2, TPO_CLASSES
from carehub.streams.consent.decide import PERMIT_REDACTED, Disclosure
from carehub.streams.consent.enforce import enforce
from carehub.streams.consent.gate import gate, gate_send
from carehub.streams.consent.labels import Program, Registry, apply_labels, has_label
from carehub.streams.consent.model import IncompleteConsentError, parse_consent
from carehub.streams.consent.policy import Policy
from carehub.streams.notify import Hub
from carehub.streams.plan import plan_action
from carehub.streams.routing.decide import PlannedAction, RoutingDecision
from carehub.streams.routing.model import Action, Due, Recipient
from tests.consent.consents import consent
from tests.consent.egress_kit import markers
from tests.streams.events import care_event

NOW = "2026-11-01"
LATER = "2026-11-02"  # when a retry or a replay of the same delivery is sent
RECIPIENTS = {"pcp-riverside": "pcp", "rx-main-street": "pharmacy", "payer-acme": "payer", "cbo-food-bank": "cbo",
              "hie-state": "hie"}  # fmt: skip
CHANNELS = ("webhook", "fhir-rest", "mllp", "kafka")
REGISTRY = Registry(programs=(
    Program("recovery-center", "Recovery Center", facilities=("RECOVERY",)),
    Program("rgh-sud-unit", "RGH addiction unit", locations=("4W-SUD",)),
))  # fmt: skip
POLICY = Policy(REGISTRY, purposes={"payer": "HPAYMT"}, redaction_allowed_for=frozenset({"payer", "hie"}))
HUB = Hub(base_url="http://hub.test/fhir")

dates = st.sampled_from(["2025-06-01", "2026-06-30", "2026-10-31", "2026-11-01", "2026-11-02", "2027-12-31"])
consents = st.builds(
    consent,
    cid=st.sampled_from(["c1", "c2", "c3"]),
    status=st.sampled_from(["active", "active", "inactive", "draft"]),
    named=st.lists(st.sampled_from(sorted(RECIPIENTS)), max_size=2).map(tuple),
    classes=st.lists(
        st.sampled_from(["treating-providers", "health-plans", "health-information-exchanges"]), max_size=2
    ).map(tuple),  # fmt: skip
    purposes=st.lists(st.sampled_from(["TREAT", "HPAYMT", "HOPERAT", "ETREAT"]), max_size=3).map(tuple),
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
    kind = draw(st.sampled_from(["admit", "discharge"]))
    base = care_event(kind, "IMP", facility=facility, location=location)
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
    hl7 = "\r".join([
        f"MSH|^~\\&|EHR|{facility}|CAREHUB|CAREHUB|20261101||ADT^A01|C1|P|2.5.1",
        "PID|1||MRN1^^^RGH^MR", f"PV1|1|I|{location}^401^A^{facility}",
        *(f"DG1|{i + 1}||{c}^^I10" for i, c in enumerate(codes)),
    ])  # fmt: skip
    event = replace(base, bundle={**base.bundle, "entry": entries}, attributes=attributes, source_hl7=hl7 + "\r")
    return apply_labels(event, REGISTRY)


def _accepted(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the hub holds: it refuses a Part 2 consent lacking §2.31 elements."""
    kept = []
    for c in raw:
        try:
            parse_consent(c)
        except IncompleteConsentError:
            continue
        kept.append(c)
    return kept


def _consent_permits(raw: dict[str, Any], d: Disclosure, at: str) -> bool:
    """An independent reading of the raw FHIR Consent: does it permit this disclosure at ``at``?"""
    provision = raw["provision"]
    actors = {a["reference"]["identifier"]["value"] for a in provision["actor"]}
    denied = {a["reference"]["identifier"]["value"] for p in provision.get("provision", []) for a in p["actor"]}
    named = d.recipient_id in actors
    by_class = TPO_CLASSES.get(d.recipient_kind) in actors
    wanted = {"notify": "Encounter", "forward": "Encounter", "task": "ServiceRequest"}[d.action]
    classes = {c["code"] for c in provision["class"]}
    return (
        raw["status"] == "active"
        and raw["policyRule"]["coding"][0]["code"] == PART2
        and raw["patient"]["identifier"]["value"] == "MRN1"
        and provision["period"]["start"] <= at <= provision["period"]["end"]
        and (named or by_class)
        and d.recipient_id not in denied
        and d.purpose in {p["code"] for p in provision["purpose"]}
        and (not classes or wanted in classes)
    )


def _wire(d: Delivery) -> bytes:
    """The bytes the channel puts on the wire: the HL7v2 text for MLLP, the JSON payload otherwise."""
    return str(d.payload.get("hl7", "")).encode() if d.channel == "mllp" else payload_bytes(d)


#: A redacted payload holds only the allow-list (config/part2.yaml ``redaction``): as HL7, these segments;
#: as FHIR, no clinical or location resource, and labels R + NORDSCLCD, never relabelled N.
REDACTED_SEGMENTS = {"MSH", "EVN", "PID", "PV1"}
NOT_ALLOWED = {"Condition", "Observation", "Location", "Practitioner", "Procedure", "AllergyIntolerance"}


def _only_the_allow_list(wire: bytes, channel: str) -> None:
    assert markers(wire) == [] and b"4W-SUD" not in wire and b"RECOVERY" not in wire, wire
    if channel == "mllp":
        assert {segment[:3] for segment in wire.decode().split("\r") if segment} <= REDACTED_SEGMENTS, wire
        return
    bundle = json.loads(wire)
    resources = [e["resource"] for e in bundle.get("entry", [])]
    assert not {r["resourceType"] for r in resources} & NOT_ALLOWED, wire
    assert {"R", "NORDSCLCD"} <= {s["code"] for s in bundle["meta"]["security"]}, bundle["meta"]
    for r in [bundle, *resources]:
        assert "N" not in {s["code"] for s in r.get("meta", {}).get("security", [])}, r


def _planned(recipient: str, action: str, channel: str) -> PlannedAction:
    r = Recipient(recipient, recipient, RECIPIENTS[recipient], channel, f"{channel}://{recipient}")
    spec = Action("task", recipient, task="tcm-contact", due=Due(business_days=2)) if action == "task" else None
    return PlannedAction("r1", action, r, "test", spec=spec)


def _permitting(recipient: str, end: str) -> dict[str, Any]:
    """A complete consent that permits every purpose and data class to ``recipient`` until ``end``."""
    return consent("c1", named=(recipient,), purposes=("TREAT", "HPAYMT", "HOPERAT"),
                   data_classes=("Encounter", "ServiceRequest"), start="2026-01-01", end=end)  # fmt: skip


@st.composite
def consent_histories(draw: st.DrawFn, recipient: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(consents when planned, consents when sent again): often one that permits, then kept, revoked,
    expired, replaced or joined by others."""
    at_plan = draw(st.lists(consents, max_size=2))
    if draw(st.booleans()):
        at_plan = [_permitting(recipient, draw(st.sampled_from(["2026-11-01", "2027-12-31"]))), *at_plan]
    change = draw(st.sampled_from(["same", "revoked", "random", "more"]))
    if change == "same":
        return at_plan, at_plan
    if change == "revoked":
        return at_plan, [{**c, "status": "inactive"} if c["id"] == "c1" else c for c in at_plan]
    if change == "more":
        return at_plan, [*at_plan, *draw(st.lists(consents, max_size=2))]
    return at_plan, draw(st.lists(consents, max_size=3))


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    event=events(),
    recipient=st.sampled_from(sorted(RECIPIENTS)),
    action=st.sampled_from(["notify", "task", "forward"]),
    channel=st.sampled_from(CHANNELS),
)
def test_no_part2_byte_leaves_without_a_permitting_consent_at_send_time(
    data: st.DataObject, event: CareEvent, recipient: str, action: str, channel: str
) -> None:
    at_plan, at_send = data.draw(consent_histories(recipient))
    channel = "mllp" if action == "forward" else channel if channel != "mllp" else "webhook"
    planned = _planned(recipient, action, channel)
    decision = RoutingDecision(event.event_id, "v1", (planned,), ())

    def plan(allowed: CareEvent, p: PlannedAction) -> Delivery:
        return plan_action(allowed, p, "v1", HUB, NOW)

    plan_consents, send_consents = _accepted(at_plan), _accepted(at_send)
    (verdict,) = enforce(event, decision, plan, [parse_consent(c) for c in plan_consents], POLICY, NOW)
    assert verdict.decision.reason and verdict.audit["id"]
    if verdict.delivery is None:
        return
    d = verdict.delivery
    if verdict.decision.outcome == PERMIT_REDACTED:
        _only_the_allow_list(_wire(d), channel)
    # sent now (first attempt) and again later under other consents (a retry, a replay)
    for at, on_file in ((NOW, plan_consents), (LATER, send_consents)):
        disclosure = Disclosure(recipient, RECIPIENTS[recipient], action, POLICY.purposes.get(RECIPIENTS[recipient],
                                "TREAT"))  # fmt: skip
        sent = gate_send(d, disclosure, [parse_consent(c) for c in on_file], (), at)
        if not sent.discloses:
            continue
        wire = _wire(d)
        program = any(m in wire for m in (b"4W-SUD", b"42CFRPart2", b"RECOVERY"))
        if not program and not (has_label(event.labels, PART2) and markers(wire)):
            continue  # neither program identity nor, from a program, an SUD code: HIPAA data at most
        permitted = any(_consent_permits(c, disclosure, at) for c in on_file if c["id"] == sent.consent_id)
        assert permitted, f"Part 2 bytes to {recipient} over {channel} ({action}) at {at} under {sent}"
        if RECIPIENTS[recipient] == "cbo":
            assert any(recipient in json.dumps(c["provision"]["actor"]) for c in on_file), "CBOs must be named"


@settings(max_examples=200, deadline=None)
@given(event=events(), raw_consents=st.lists(consents, max_size=3), recipient=st.sampled_from(sorted(RECIPIENTS)),
       action=st.sampled_from(["notify", "task", "forward"]))  # fmt: skip
def test_the_plan_time_gate_never_hands_on_part2_without_a_permit(
    event: CareEvent, raw_consents: list[dict[str, Any]], recipient: str, action: str
) -> None:
    raw_consents = _accepted(raw_consents)
    kind = RECIPIENTS[recipient]
    d = Disclosure(recipient, kind, action, POLICY.purposes.get(kind, "TREAT"),
                   redaction_allowed=kind in POLICY.redaction_allowed_for)  # fmt: skip
    decision, disclosed = gate(event, d, [parse_consent(c) for c in raw_consents], NOW, POLICY)
    if disclosed is None:
        return
    text = json.dumps(disclosed.bundle) + disclosed.source_hl7
    if PART2 in text or "4W-SUD" in text or "RECOVERY" in text:
        assert any(_consent_permits(c, d, NOW) for c in raw_consents if c["id"] == decision.consent_id), decision
