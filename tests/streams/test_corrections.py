"""Corrections in the patient state and the consent lookups (pure, plus a journal for merges)."""

from __future__ import annotations

from dataclasses import replace

from carehub.journal import open_journal
from carehub.streams.consent.deps import MergedLookup
from carehub.streams.consent.model import ConsentDirective, Provision
from carehub.streams.corrections import originals
from carehub.streams.routing.decide import decide
from carehub.streams.routing.load import load_routing_map
from carehub.streams.signals import OpenTask, PatientState, Sent, merged, observe, signals
from tests.conftest import REPO
from tests.streams.events import care_event

DISCHARGE = care_event("discharge", occurred_at="2026-11-06T16:00:00Z")
SENT = [Sent("n1", "pcp-riverside", "notify"), Sent("t1", "pcp-riverside", "task"), Sent("t2", "cbo", "task")]
TASKS = [OpenTask("t1", "tcm-contact", "pcp-riverside", "2026-11-10T16:00:00Z"),
         OpenTask("t2", "sdoh-referral", "cbo", "2026-11-20T16:00:00Z")]  # fmt: skip


def _discharged() -> PatientState:
    state = observe(PatientState(), care_event("admit"), [], [Sent("n0", "pcp-riverside", "notify")])
    return observe(state, DISCHARGE, TASKS, SENT)


def test_a_cancelled_discharge_is_undone_in_the_signals() -> None:
    state = _discharged()
    readmit = care_event("admit", occurred_at="2026-11-12T10:00:00Z", encounter_id="e2")
    assert {"readmission", "open-follow-up"} <= signals(state, readmit).flags
    cancel = care_event("cancel-discharge", occurred_at="2026-11-06T18:00:00Z", trigger="A13")
    got = originals(state, cancel)
    assert [(s.delivery_id, s.action) for s in got] == [("n1", "notify"), ("t1", "task"), ("t2", "task")]
    after = observe(state, cancel, [], [])
    assert after.discharges == () and after.open_tasks == ()
    assert signals(after, readmit).flags == frozenset()
    assert PatientState.from_dict(after.to_dict()) == after, "the table round-trips the visits"


def test_a_cancelled_transfer_corrects_notifications_only_and_an_a08_only_a_key_field() -> None:
    state = _discharged()
    assert [s.delivery_id for s in originals(state, care_event("cancel-transfer"))] == ["n1"]
    same = care_event("update")
    assert "key-field-corrected" not in signals(state, same).flags
    assert "key-field-corrected" in signals(state, care_event("update", encounter_class="OBSENC")).flags
    assert originals(state, care_event("cancel-discharge", encounter_id="other-visit")) == []


def test_a_merge_moves_history_and_corrects_what_the_retired_record_was_told() -> None:
    retired = _discharged()
    survivor = merged(PatientState(), [retired])
    assert survivor.open_tasks == retired.open_tasks and survivor.discharges == retired.discharges
    merge = care_event("merge", patient_key="RGH|MRN2", encounter_id=None, attributes={"merged_from": ["RGH|MRN1"]})
    assert [s.delivery_id for s in originals(PatientState(), merge, [retired])] == ["n1"]


def test_consents_of_a_merged_record_apply_to_the_survivor() -> None:
    journal = open_journal("sqlite:///:memory:")
    consent = ConsentDirective("c1", "RGH|MRN1", "active", True, Provision(type="permit"))

    class Lookup:
        def for_patient(self, key: str) -> list[ConsentDirective]:
            return [consent] if key == "RGH|MRN1" else []

        def emergencies_for(self, key: str) -> list[object]:
            return []

    lookup = MergedLookup(Lookup(), journal.retired_into)  # type: ignore[arg-type]
    assert lookup.for_patient("RGH|MRN2") == []
    journal.link_patients(["RGH|MRN1"], "RGH|MRN2")
    assert lookup.for_patient("RGH|MRN2") == [replace(consent, patient_key="RGH|MRN2")]
    journal.link_patients(["RGH|MRN2"], "RGH|MRN3")  # merged again: both earlier records follow
    assert sorted(journal.retired_into("RGH|MRN3")) == ["RGH|MRN1", "RGH|MRN2"]


def test_the_shipped_map_sends_every_kind_of_correction_to_who_received_the_original() -> None:
    routing_map = load_routing_map(REPO / "config")
    told = [Sent("n1", "pcp-riverside", "notify"), Sent("t1", "pharmacy-mainst", "task")]
    for kind, trigger in [("cancel-admit", "A11"), ("cancel-transfer", "A12"), ("cancel-discharge", "A13"),
                          ("merge", "A40"), ("merge", "A18"), ("change-identifier", "A47")]:  # fmt: skip
        event = care_event(kind, trigger=trigger)
        received = told if kind.startswith("cancel-") else told[:1]  # streams.corrections.originals decides
        decision = decide(event, routing_map, frozenset(), received)
        got = [(p.recipient.id, p.action, p.corrects) for p in decision.planned]
        assert got == [(s.recipient_id, s.action, s.delivery_id) for s in received], kind
    update = care_event("update")
    assert decide(update, routing_map, frozenset(), told).planned == ()
    assert len(decide(update, routing_map, frozenset({"key-field-corrected"}), told).planned) == 2
