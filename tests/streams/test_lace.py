"""The LACE index at discharge, against hand-computed cases (merges and cancelled visits included)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from carehub.core.records import CareEvent
from carehub.streams.charlson import charlson, conditions
from carehub.streams.notify import Hub, notification_bundle
from carehub.streams.risk import LACE_CODE, Lace, lace, with_lace
from carehub.streams.routing.decide import decide
from carehub.streams.routing.load import load_routing_map
from carehub.streams.routing.match import scores
from carehub.streams.signals import PatientState, merged, observe
from tests.conftest import CONFIG
from tests.streams.events import care_event

HUB = Hub(base_url="https://hub.example.org/fhir")


def _event(kind: str, at: str, visit: str, klass: str = "IMP", codes: tuple[str, ...] = (), **attrs: Any) -> CareEvent:
    base = care_event(kind, klass)
    attributes = {**base.attributes, "diagnoses": [{"system": "ICD10", "code": c} for c in codes], **attrs}
    return replace(base, event_id=f"{kind}-{visit}-{at}", occurred_at=at, encounter_id=visit, attributes=attributes)


def _play(events: list[CareEvent], state: PatientState | None = None) -> PatientState:
    state = state or PatientState()
    for event in events:
        state = observe(state, event, [])
    return state


def test_charlson_counts_each_condition_once_and_the_severer_form_only() -> None:
    assert charlson(["I50.9", "I50.23"]) == 1  # heart failure twice: once
    assert charlson(["E11.9", "E11.22"]) == 2  # diabetes with a complication replaces the uncomplicated form
    assert charlson(["C34.90", "C78.01"]) == 6  # metastases replace the primary malignancy
    assert charlson(["K70.30", "K72.10"]) == 3  # severe liver disease replaces mild
    assert [c.name for c in conditions(["J44.9", "N18.4", "Z59.0"])] == ["chronic pulmonary disease", "renal disease"]
    assert charlson([]) == 0


def test_letter_points_follow_the_published_table() -> None:
    assert [Lace(d, False, 0, 0).l_points for d in (0, 1, 2, 3, 4, 6, 7, 13, 14, 30)] == [0, 1, 2, 3, 4, 4, 5, 5, 7, 7]
    assert [Lace(0, False, c, 0).c_points for c in (0, 1, 3, 4, 9)] == [0, 1, 3, 5, 5]
    assert [Lace(0, False, 0, e).e_points for e in (0, 3, 4, 7)] == [0, 3, 4, 4]
    assert Lace(5, True, 5, 2).score == 4 + 3 + 5 + 2


def test_emergent_admission_with_comorbidities_and_prior_ed_visits() -> None:
    """Hand-computed: 5-day stay (L4), PV1-4 E (A3), CHF + diabetes with complication + CKD = Charlson 5 (C5),
    two ED visits in the 6 months before (E2; one 8 months back and one cancelled by A11 do not count): 14."""
    history = [
        _event("register", "2026-03-01T10:00:00Z", "ed-old", "EMER"),  # 8 months before: outside 6 months
        _event("register", "2026-07-10T10:00:00Z", "ed-1", "EMER", ("I50.9",)),
        _event("register", "2026-09-02T10:00:00Z", "ed-2", "EMER"),
        _event("register", "2026-10-01T10:00:00Z", "ed-cancelled", "EMER", ("C34.90",)),
        _event("cancel-admit", "2026-10-01T12:00:00Z", "ed-cancelled", "EMER"),  # A11: never happened
        _event("admit", "2026-11-02T08:00:00Z", "v1", codes=("E11.22",), admission_type="E"),
    ]
    state = _play(history)
    score = lace(state, _event("discharge", "2026-11-07T15:00:00Z", "v1", codes=("N18.3",)))
    assert score == Lace(length_of_stay_days=5, emergent=True, charlson=5, ed_visits=2)
    assert score.score == 14


def test_elective_same_day_stay_without_history_scores_zero() -> None:
    state = _play([_event("admit", "2026-11-02T08:00:00Z", "v1", admission_type="R")])
    score = lace(state, _event("discharge", "2026-11-02T18:00:00Z", "v1"))
    assert score is not None and score.score == 0


def test_a_cancelled_discharge_does_not_end_the_stay() -> None:
    """A03 on day 2, A13 cancels it, the real A03 on day 10: the stay is 10 days (L5), not 2."""
    state = _play(
        [
            _event("admit", "2026-11-02T08:00:00Z", "v1", admission_type="U"),
            _event("discharge", "2026-11-04T08:00:00Z", "v1"),
            _event("cancel-discharge", "2026-11-04T09:00:00Z", "v1"),
        ]
    )
    score = lace(state, _event("discharge", "2026-11-12T10:00:00Z", "v1"))
    assert score == Lace(10, False, 0, 0) and score.score == 5


def test_a_merged_patients_history_counts_for_the_survivor() -> None:
    """The retired record had 3 ED visits and a COPD code; after the A40 the survivor's discharge counts them:
    L3 (3 days) + A0 + C1 (COPD) + E3 = 7; without the merge only L3."""
    retired = _play(
        [
            _event("register", "2026-08-01T10:00:00Z", "r-ed-1", "EMER", ("J44.9",)),
            _event("register", "2026-09-01T10:00:00Z", "r-ed-2", "EMER"),
            _event("register", "2026-10-01T10:00:00Z", "r-ed-3", "EMER"),
        ]
    )
    survivor = _play([_event("admit", "2026-11-10T08:00:00Z", "s-v1")])
    discharge = _event("discharge", "2026-11-13T08:00:00Z", "s-v1")
    alone = lace(survivor, discharge)
    together = lace(merged(survivor, [retired]), discharge)
    assert alone is not None and alone.score == 3
    assert together == Lace(3, False, 1, 3) and together.score == 7


def test_the_score_rides_on_the_notification_and_routing_rules_test_it(tmp_path: Path) -> None:
    state = _play([_event("admit", "2026-11-02T08:00:00Z", "e1", admission_type="E")])
    discharge = _event("discharge", "2026-11-20T08:00:00Z", "e1", codes=("I50.9", "N18.4"))
    score = lace(state, discharge)
    assert score is not None and score.score == 7 + 3 + 3  # 18 days, emergent, CHF + renal
    event = with_lace(discharge, score)
    assert scores(event)[LACE_CODE] == 13 and event.attributes["lace"] == 13
    bundle = notification_bundle(event, hub=HUB, destination="https://pcp", recipient_name="PCP", key="k1",
                                 timestamp="2026-11-20T08:00:01Z")  # fmt: skip
    observations = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"]
    assert [o["valueInteger"] for o in observations] == [13]
    assert observations[0]["code"]["coding"][0] == {
        "system": "urn:carehub:risk", "code": "lace-index", "display": "LACE index for 30-day readmission or death"
    }  # fmt: skip
    config = tmp_path / "config"
    config.mkdir()
    for name in ("recipients.yaml", "part2.yaml"):
        (config / name).write_text((CONFIG / name).read_text())
    (config / "routes.yaml").write_text(
        'version: "t1"\nrules:\n  - id: high-risk\n    when:\n      kind: [discharge]\n'
        "      risk: {lace: {gte: 10}}\n    actions:\n      - notify: payer-acme\n"
    )
    routing = load_routing_map(config)
    high = decide(event, routing)
    assert [(p.recipient.id, p.rule_id) for p in high.planned] == [("payer-acme", "high-risk")]
    low = decide(with_lace(discharge, Lace(1, False, 0, 0)), routing)
    assert low.planned == ()
    assert decide(discharge, routing).planned == (), "no LACE index in the event: no match"
    forged = with_lace(discharge, Lace(1, False, 0, 0))
    forged_bundle = {**forged.bundle, "entry": [*forged.bundle["entry"], {"resource": {
        "resourceType": "Observation", "id": "sender", "code": {"coding": [{"code": "lace-index"}]},
        "valueInteger": 19}}]}  # fmt: skip
    assert decide(replace(forged, bundle=forged_bundle), routing).planned == (), "a sender's code is not the hub's"
    assert len([e for e in with_lace(event, score).bundle["entry"] if e["resource"]["resourceType"] == "Observation"
                and e["resource"]["code"].get("coding", [{}])[0].get("system") == "urn:carehub:risk"]) == 1  # fmt: skip
