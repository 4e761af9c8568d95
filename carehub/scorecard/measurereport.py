"""Computed measures as FHIR R4 MeasureReports, shaped as Da Vinci DEQM summary and subject-list reports (pure).

* ``summary``: one group per measure with its populations (initial-population, denominator,
  denominator-exclusion, numerator) and counts, ``measureScore`` (the rate, or for a duration
  measure the median in seconds), and a stratifier per facility / payer / recipient / service.
* ``subject-list``: the same, each population's ``subjectResults`` referring to a contained List
  of the patients in it (identifier references, ``urn:carehub:patient``), so a payer or quality
  lead can work the gaps.

The measure is named by a canonical URL of the hub (``<base>/Measure/<id>``); there is no Measure
resource to read, the definition is the measure file (docs/scorecard.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from carehub.core.clock import now_iso
from carehub.core.uuids import Namespace
from carehub.journal.tasks import PATIENT_SYSTEM
from carehub.scorecard.compute import Result, Subject, Summary

DEQM = "http://hl7.org/fhir/us/davinci-deqm/StructureDefinition"
PROFILES = {"summary": f"{DEQM}/summary-measurereport-deqm", "subject-list": f"{DEQM}/subjectlist-measurereport-deqm"}
POPULATION = "http://terminology.hl7.org/CodeSystem/measure-population"
IMPROVEMENT = "http://terminology.hl7.org/CodeSystem/measure-improvement-notation"
REPORT_TYPES = tuple(PROFILES)
_NS = Namespace("9d3c1a7e-5b2f-4e60-8a1d-3f7c2b9e0a41")
#: Population code -> which subjects are in it.
_POPULATIONS = (
    ("initial-population", lambda s: True),
    ("denominator", lambda s: s.status != "excluded"),
    ("denominator-exclusion", lambda s: s.status == "excluded"),
    ("numerator", lambda s: s.status == "met"),
)


def measure_url(base_url: str, measure_id: str) -> str:
    return f"{base_url.rstrip('/')}/Measure/{measure_id}"


def _code(code: str) -> dict[str, Any]:
    return {"coding": [{"system": POPULATION, "code": code}]}


def _score(result: Result, s: Summary) -> dict[str, Any] | None:
    if result.measure.type == "duration":
        return None if s.median is None else {"value": round(s.median, 3), "unit": "s",
                                              "system": "http://unitsofmeasure.org", "code": "s"}  # fmt: skip
    return None if s.rate is None else {"value": round(s.rate, 4)}


def _populations(result: Result, subjects: Sequence[Subject], lists: dict[str, str] | None) -> list[dict[str, Any]]:
    out = []
    for code, member in _POPULATIONS:
        population: dict[str, Any] = {"code": _code(code), "count": sum(1 for s in subjects if member(s))}
        if lists is not None:
            population["subjectResults"] = {"reference": f"#{lists[code]}"}
        out.append(population)
    return out


def _list(list_id: str, title: str, subjects: Sequence[Subject]) -> dict[str, Any]:
    keys = list(dict.fromkeys(s.patient_key for s in subjects))
    return {
        "resourceType": "List",
        "id": list_id,
        "status": "current",
        "mode": "snapshot",
        "title": title,
        "entry": [{"item": {"identifier": {"system": PATIENT_SYSTEM, "value": k}}} for k in keys],
    }


def measure_report(result: Result, *, base_url: str, reporter: str, report_type: str = "summary") -> dict[str, Any]:
    """One MeasureReport for one computed measure."""
    m = result.measure
    subject_list = report_type == "subject-list"
    lists = {code: f"{code}-{m.id}" for code, _ in _POPULATIONS} if subject_list else None
    group: dict[str, Any] = {
        "id": m.id,
        "code": {"text": m.title},
        "population": _populations(result, result.subjects, lists),
    }
    score = _score(result, result.summary)
    if score is not None:
        group["measureScore"] = score
    stratifiers = []
    for key, groups in result.strata.items():
        strata = []
        for value in groups:
            members = [s for s in result.subjects if (s.strata()[key] or "(none)") == value]
            stratum: dict[str, Any] = {"value": {"text": value}, "population": _populations(result, members, None)}
            if (stratum_score := _score(result, groups[value])) is not None:
                stratum["measureScore"] = stratum_score
            strata.append(stratum)
        stratifiers.append({"code": [{"text": key}], "stratum": strata})
    if stratifiers:
        group["stratifier"] = stratifiers
    report: dict[str, Any] = {
        "resourceType": "MeasureReport",
        "id": _NS.id(f"{m.id}|{result.period.text()}|{report_type}|{result.as_of}"),
        "meta": {"profile": [PROFILES[report_type]]},
        "status": "complete" if all(s.status != "pending" for s in result.subjects) else "pending",
        "type": report_type,
        "measure": measure_url(base_url, m.id),
        "date": now_iso(),
        "reporter": {"display": reporter},
        "period": {"start": result.period.start.isoformat(), "end": result.period.end.isoformat()},
        "improvementNotation": {"coding": [{"system": IMPROVEMENT, "code": m.improvement}]},
        "group": [group],
    }
    if lists is not None:
        report["contained"] = [
            _list(lists[code], f"{code} of {m.id}", [s for s in result.subjects if member(s)])
            for code, member in _POPULATIONS
        ]
    return report


def searchset(reports: list[dict[str, Any]], base_url: str) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(reports),
        "entry": [
            {"fullUrl": f"{base_url.rstrip('/')}/MeasureReport/{r['id']}", "resource": r, "search": {"mode": "match"}}
            for r in reports
        ],
    }
