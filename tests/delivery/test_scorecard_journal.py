"""The scorecard's SQL on SQLite and PostgreSQL: hand-built journals, hand-counted rates and worklists."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest

from carehub.core.clock import set_clock
from carehub.core.errors import ConfigError
from carehub.core.records import DeliveryOutcome
from carehub.journal import Journal
from carehub.journal.carefacts import Cancel, CareFact, FactTask
from carehub.scorecard.compute import Calculator, Period
from carehub.scorecard.definitions import load_measures
from carehub.scorecard.worklists import worklists
from tests.conftest import CONFIG

KINDS = {"pcp-riverside": "pcp", "payer-acme": "payer", "pharmacy-mainst": "pharmacy", "cbo-foodbank": "cbo"}
NOV = Period(date(2026, 11, 1), date(2026, 11, 30))
MEASURES = {m.id: m for m in load_measures(CONFIG)}


@pytest.fixture(autouse=True)
def _clock() -> Iterator[None]:
    yield
    set_clock(None)


def at(text: str) -> None:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    set_clock(lambda: moment)


def fact(event_id: str, patient: str, visit: str, kind: str, when: str, klass: str = "IMP", **kw: str) -> CareFact:
    where, disposition = kw.get("facility", "RGH"), kw.get("disposition", "01")
    return CareFact(event_id, patient, visit, kind, when, when, where, klass, "I", "E", disposition, "1960-05-01",
                    "payer-acme", "pcp-riverside", 9, "L4 A3 C0 E2")  # fmt: skip


def delivered(journal: Journal, event_id: str, recipient: str, when: str, status: str = "delivered") -> None:
    journal.record_outcome(
        DeliveryOutcome(f"d-{event_id}-{recipient}", "k", event_id, recipient, "notify", status, 1, "", when, 200)
    )


def task(journal: Journal, task_id: str, event_id: str, patient: str, recipient: str, code: str, authored: str) -> None:
    at(authored)
    journal.facts.record(None, [FactTask(task_id, event_id, patient, recipient, code, "transitions-of-care", "")])
    due = {"period": {"end": "2026-11-12T00:00:00Z"}}
    journal.tasks.put({"id": task_id, "status": "requested", "authoredOn": authored, "restriction": due},
                      recipient, "hub", patient)  # fmt: skip


def change(journal: Journal, task_id: str, status: str, when: str) -> None:
    at(when)
    journal.tasks.update(task_id, {"status": status}, "recipient")


def build(journal: Journal) -> None:
    """Four patients (a merged pair among them), one cancelled discharge; each count below is by hand."""
    at("2026-11-02T08:00:00Z")
    rec = journal.facts.record
    rec(fact("a-admit", "A", "va1", "admit", "2026-11-02T08:00:00.000Z"), [])
    delivered(journal, "a-admit", "pcp-riverside", "2026-11-03T09:00:00.000Z")  # day 1 after admission: met
    rec(fact("a-dis", "A", "va1", "discharge", "2026-11-05T15:00:00.000Z"), [])
    delivered(journal, "a-dis", "pcp-riverside", "2026-11-09T09:00:00.000Z")  # day 4: too late
    delivered(journal, "a-dis", "payer-acme", "2026-11-05T15:00:01.000Z")  # a payer is not the PCP
    rec(fact("a-readmit", "A", "va2", "admit", "2026-11-20T10:00:00.000Z"), [])  # 15 days later: readmitted
    task(journal, "t-visit-a", "a-dis", "A", "pcp-riverside", "tcm-visit", "2026-11-05T15:00:00.000Z")
    change(journal, "t-visit-a", "accepted", "2026-11-05T17:00:00.000Z")
    change(journal, "t-visit-a", "completed", "2026-11-08T11:00:00.000Z")  # day 3: follow-up met
    task(journal, "t-medrec-a", "a-dis", "A", "pharmacy-mainst", "med-rec", "2026-11-05T15:00:00.000Z")
    change(journal, "t-medrec-a", "rejected", "2026-11-06T10:00:00.000Z")  # declined, no alternative
    rec(fact("b-dis", "B", "vb1", "discharge", "2026-11-10T12:00:00.000Z", disposition="exp"), [])  # died: excluded
    rec(fact("c-dis", "C1", "vc1", "discharge", "2026-11-12T12:00:00.000Z"), [])  # no notification: a gap
    rec(fact("c-visit", "C2", "vc2", "register", "2026-11-15T09:00:00.000Z", "AMB"), [])
    journal.link_patients(["C1"], "C2")  # A40: C1's discharge and C2's clinic visit are one patient's
    rec(fact("d-dis", "D", "vd1", "discharge", "2026-11-14T12:00:00.000Z"), [])
    delivered(journal, "d-dis", "pcp-riverside", "2026-11-14T12:00:01.000Z")
    rec(None, [], Cancel("cancel-discharge", "vd1", "d-a13", "2026-11-14T13:00:00.000Z"))  # A13: not a discharge
    rec(fact("d-dis-2", "D", "vd1", "discharge", "2026-11-18T12:00:00.000Z", facility="LAKESIDE"), [])
    delivered(journal, "d-dis-2", "pcp-riverside", "2026-11-18T12:10:00.000Z")
    rec(None, [], Cancel("cancel-discharge", "vd1", "d-a13", "2026-11-14T13:00:00.000Z"))  # redelivered A13
    set_clock(None)


def _rate(journal: Journal, measure: str, as_of: date = date(2027, 1, 31)) -> tuple[int, int, int]:
    result = Calculator(journal.db, KINDS).compute(MEASURES[measure], NOV, as_of)
    return result.summary.numerator, result.summary.denominator, result.summary.excluded


def test_rates_follow_the_evidence_across_merges_and_cancels(journal: Journal) -> None:
    build(journal)
    # discharges in November: a-dis, c-dis, d-dis-2 (b-dis died: excluded; d-dis was cancelled by the A13)
    assert _rate(journal, "trc-admission-notification") == (1, 3, 1)  # only A's admission was notified in time
    assert _rate(journal, "trc-discharge-information") == (1, 3, 1)  # D's second discharge; A's came on day 4
    assert _rate(journal, "trc-patient-engagement") == (2, 3, 1)  # A's TCM visit; C's clinic visit after the A40
    assert _rate(journal, "trc-medication-reconciliation") == (0, 3, 1)
    assert _rate(journal, "pcr-readmission-30d") == (1, 3, 1)
    assert _rate(journal, "follow-up-7d-after-discharge") == (2, 3, 1)
    by_facility = Calculator(journal.db, KINDS).compute(MEASURES["trc-discharge-information"], NOV, date(2027, 1, 1))
    assert {k: (s.numerator, s.denominator) for k, s in by_facility.strata["facility"].items()} == {
        "LAKESIDE": (1, 1), "RGH": (0, 2)}  # fmt: skip
    subjects = {s.id: s for s in by_facility.subjects}
    assert subjects["c-dis"].patient_key == "C2" and subjects["b-dis"].why == "discharge disposition exp"
    assert "d-dis" not in subjects


def test_open_windows_are_pending_until_they_close(journal: Journal) -> None:
    build(journal)
    result = Calculator(journal.db, KINDS).compute(MEASURES["trc-medication-reconciliation"], NOV, date(2026, 12, 6))
    assert {s.id: s.status for s in result.subjects} == {
        "a-dis": "unmet", "b-dis": "excluded", "c-dis": "pending", "d-dis-2": "pending"}  # fmt: skip
    assert result.summary.pending == 2 and result.summary.denominator == 3


def test_turnaround_completion_and_latency(journal: Journal) -> None:
    build(journal)
    calc = Calculator(journal.db, KINDS)
    accept = calc.compute(MEASURES["referral-time-to-accept"], NOV, date(2027, 1, 1)).summary
    assert (accept.count, accept.open, accept.median) == (1, 1, 2 * 3600.0)
    complete = calc.compute(MEASURES["referral-time-to-complete"], NOV, date(2027, 1, 1)).summary
    assert complete.median == complete.p90 == (2 * 24 + 20) * 3600.0
    completion = calc.compute(MEASURES["service-completion"], NOV, date(2027, 1, 1))
    assert (completion.summary.numerator, completion.summary.denominator) == (1, 2)
    assert set(completion.strata["service"]) == {"med-rec", "tcm-visit"}
    latency = calc.compute(MEASURES["notification-latency"], NOV, date(2027, 1, 1))
    values = sorted(s.value_s for s in latency.subjects if s.value_s is not None)
    assert values == [1.0, 1.0, 600.0, 25 * 3600.0, 4 * 86400 - 6 * 3600.0]  # a later-cancelled one too
    assert latency.summary.median == 600.0 and latency.summary.p90 == values[-1]


def test_worklists_name_the_gap_and_the_next_step(journal: Journal) -> None:
    build(journal)
    task(journal, "t-contact-c", "c-dis", "C2", "pcp-riverside", "tcm-contact", "2026-11-12T12:00:00.000Z")
    at("2026-11-20T12:00:00Z")
    gaps = worklists(journal.db, KINDS, days=60)
    found = {(g.list, g.patient_key, g.task_code or g.event_kind) for g in gaps}
    assert found == {("no-receipt", "C2", "discharge"), ("declined", "A", "med-rec"),
                     ("not-accepted", "C2", "tcm-contact"), ("overdue", "C2", "tcm-contact")}  # fmt: skip
    at("2026-11-12T13:00:00Z")
    assert {g.list for g in worklists(journal.db, KINDS, days=60) if g.task_id == "t-contact-c"} == {"overdue"}
    declined = next(g for g in gaps if g.list == "declined")
    assert declined.recipient == "pharmacy-mainst" and "another provider" in declined.next_step
    assert next(g for g in gaps if g.list == "no-receipt").lace == 9


def test_measure_files_report_every_problem_with_file_and_line(tmp_path: Path) -> None:
    folder = tmp_path / "measures"
    folder.mkdir()
    (folder / "a.yaml").write_text(
        "measures:\n"
        "  - id: one\n    title: One\n    subject: event\n    denominator: {events: [discharge]}\n"
        "  - id: two\n    title: Two\n    subject: task\n    type: duration\n    denominator: {}\n"
        "    duration: {from: received, to: completed}\n"
    )
    (folder / "b.yaml").write_text("measures:\n  - id: one\n    title: Again\n    subject: evnt\n    denominator: {}\n")
    with pytest.raises(ConfigError) as raised:
        load_measures(tmp_path)
    text = str(raised.value)
    assert f"{folder / 'a.yaml'}:2: measures/0 (one): numerator: an event measure needs numerator.any_of" in text
    assert f"{folder / 'a.yaml'}:6: measures/1 (two): duration: a task duration runs from ['created']" in text
    assert f"{folder / 'b.yaml'}:4: measures/0/subject:" in text and "did you mean 'event'" in text


def test_the_command_prints_csv_json_and_the_worklist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from carehub.cli import main
    from carehub.journal import open_journal

    url = f"sqlite:///{tmp_path / 'journal.db'}"
    journal = open_journal(url)
    build(journal)
    journal.close()
    common = ["--from", "2026-11-01", "--to", "2026-11-30", "--database-url", url, "--config-dir", str(CONFIG)]
    at("2027-01-31T00:00:00Z")
    assert main(["scorecard", *common, "--csv", "--by", "facility", "--measure", "trc-discharge-information"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].startswith("measure,stratifier,stratum,numerator,denominator,rate")
    assert "trc-discharge-information,,,1,3,0.3333,1,0" in rows[1]
    assert "trc-discharge-information,facility,LAKESIDE,1,1,1.0000" in rows[2]
    assert main(["scorecard", *common, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [m["id"] for m in doc["measures"]][:5] == [
        "trc-admission-notification", "trc-discharge-information", "trc-discharge-packet", "trc-patient-engagement",
        "trc-medication-reconciliation"]  # fmt: skip
    assert all({"numerator", "denominator", "rate"} <= set(m) for m in doc["measures"])
    assert main(["scorecard", *common]) == 0
    assert "pcr-readmission-30d" in capsys.readouterr().out
    at("2026-11-20T12:00:00Z")
    assert main(["scorecard", "--worklist", "--json", "--database-url", url, "--config-dir", str(CONFIG)]) == 0
    gaps = json.loads(capsys.readouterr().out)
    assert {(g["list"], g["patient_key"]) for g in gaps} == {("no-receipt", "C2"), ("declined", "A")}
    assert main(["scorecard", *common, "--measure", "nope"]) == 2
    assert "no measure nope" in capsys.readouterr().err


def test_measure_reports_are_deqm_shaped(journal: Journal) -> None:
    from carehub.scorecard.measurereport import measure_report

    build(journal)
    result = Calculator(journal.db, KINDS).compute(MEASURES["trc-discharge-information"], NOV, date(2027, 1, 1))
    summary = measure_report(result, base_url="https://hub.example.org/fhir", reporter="carehub")
    assert summary["meta"]["profile"] == [
        "http://hl7.org/fhir/us/davinci-deqm/StructureDefinition/summary-measurereport-deqm"]  # fmt: skip
    assert summary["measure"] == "https://hub.example.org/fhir/Measure/trc-discharge-information"
    assert summary["period"] == {"start": "2026-11-01", "end": "2026-11-30"} and summary["status"] == "complete"
    group = summary["group"][0]
    counts = {p["code"]["coding"][0]["code"]: p["count"] for p in group["population"]}
    assert counts == {"initial-population": 4, "denominator": 3, "denominator-exclusion": 1, "numerator": 1}
    assert group["measureScore"] == {"value": 0.3333} and "contained" not in summary
    facility = next(s for s in group["stratifier"] if s["code"][0]["text"] == "facility")
    scores = {s["value"]["text"]: s["measureScore"]["value"] for s in facility["stratum"]}
    assert scores == {"LAKESIDE": 1.0, "RGH": 0.0}
    listed = measure_report(result, base_url="https://hub.example.org/fhir", reporter="carehub",
                            report_type="subject-list")  # fmt: skip
    lists = {c["id"]: [e["item"]["identifier"]["value"] for e in c["entry"]] for c in listed["contained"]}
    numerator = next(p for p in listed["group"][0]["population"] if p["code"]["coding"][0]["code"] == "numerator")
    assert lists[numerator["subjectResults"]["reference"][1:]] == ["D"]
    assert sorted(lists["denominator-trc-discharge-information"]) == ["A", "C2", "D"]
