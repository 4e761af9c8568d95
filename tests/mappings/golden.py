"""Compare our bundles with other converters' expected outputs on the fields that matter.

References: ``*.expected.json`` next to a corpus message (msfc = Microsoft
FHIR-Converter, gcphdh = Google healthcare-data-harmonization). Both put
resources in ``entry[].resource``. For each field we extract a comparable
value from both bundles:

* ``equal`` fields agree when the normalized values are equal;
* ``subset`` fields agree when what we produce is contained in the
  reference, because the references fold data from other segments into the
  same element (msfc adds IN2/GT1 names and identifiers to the Patient).

A field is *compared* when either side has a value.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

Resource = dict[str, Any]
Value = frozenset[str] | str | None


def _index(bundle: dict[str, Any]) -> dict[str, Resource]:
    found: dict[str, Resource] = {}
    for entry in bundle.get("entry", []):
        resource = entry.get("resource") or {}
        if "resourceType" in resource:
            found[f"{resource['resourceType']}/{resource.get('id')}"] = resource
    return found


def _of_type(index: dict[str, Resource], rtype: str) -> list[Resource]:
    return [r for r in index.values() if r["resourceType"] == rtype]


def _norm(text: Any) -> str:
    return " ".join(str(text).split()).casefold()


def _codes(concepts: Iterable[dict[str, Any]]) -> frozenset[str]:
    return frozenset(_norm(c.get("code", "")) for cc in concepts for c in cc.get("coding", []) if c.get("code"))


def _when(value: str | None) -> str | None:
    """The instant to the minute, in UTC when a zone is given (msfc shifts times to its own zone)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value[:16]
    if parsed.tzinfo is None:
        return value[:16]
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def _first(items: list[Resource]) -> Resource:
    return items[0] if items else {}


def _patient(ix: dict[str, Resource]) -> Resource:
    """The patient the message is about: merge bundles also hold the retired record, without a name."""
    patients = _of_type(ix, "Patient")
    return next((p for p in patients if p.get("name")), _first(patients))


def patient_identifiers(ix: dict[str, Resource]) -> Value:
    return frozenset(_norm(i["value"]) for i in _patient(ix).get("identifier", []) if "value" in i)


def names(ix: dict[str, Resource]) -> Value:
    out = set()
    for name in _patient(ix).get("name", []):
        given = name.get("given", [""])
        out.add(f"{_norm(name.get('family', ''))}|{_norm(given[0] if given else '')}")
    return frozenset(out)


def birth_date(ix: dict[str, Resource]) -> Value:
    return _patient(ix).get("birthDate")


def gender(ix: dict[str, Resource]) -> Value:
    return _patient(ix).get("gender")


def address(ix: dict[str, Resource]) -> Value:
    addresses = _patient(ix).get("address", [])
    if not addresses:
        return None
    a = addresses[0]
    lines = a.get("line", [""])
    return "|".join(_norm(x) for x in (lines[0] if lines else "", a.get("city", ""), a.get("postalCode", "")))


def _encounter(ix: dict[str, Resource]) -> Resource:
    return _first(_of_type(ix, "Encounter"))


def encounter_class(ix: dict[str, Resource]) -> Value:
    code = _encounter(ix).get("class", {}).get("code")
    return str(code) if code else None


def encounter_status(ix: dict[str, Resource]) -> Value:
    return _encounter(ix).get("status")


def period_start(ix: dict[str, Resource]) -> Value:
    return _when(_encounter(ix).get("period", {}).get("start"))


def period_end(ix: dict[str, Resource]) -> Value:
    return _when(_encounter(ix).get("period", {}).get("end"))


def location(ix: dict[str, Resource]) -> Value:
    """Point-of-care names of the active locations (we name a bed ``ward/room/bed``; msfc one Location per part)."""
    out = set()
    for entry in _encounter(ix).get("location", []):
        if entry.get("status", "active") != "active":
            continue
        found = ix.get(entry.get("location", {}).get("reference", ""), {})
        out.add(_norm(str(found.get("name", "")).split("/")[0]))
    return frozenset(out)


def discharge_disposition(ix: dict[str, Resource]) -> Value:
    codes = _codes([_encounter(ix).get("hospitalization", {}).get("dischargeDisposition", {})])
    return codes or None


def practitioner_identifiers(ix: dict[str, Resource]) -> Value:
    practitioners = _of_type(ix, "Practitioner")
    return frozenset(_norm(i["value"]) for p in practitioners for i in p.get("identifier", []) if "value" in i)


def coverage_payor(ix: dict[str, Resource]) -> Value:
    out = set()
    for coverage in _of_type(ix, "Coverage"):
        for ref in coverage.get("payor", []):
            org = ix.get(ref.get("reference", ""), {})
            if org.get("resourceType") == "Organization" and org.get("name"):
                out.add(_norm(org["name"]))
    return frozenset(out)


def coverage_subscriber(ix: dict[str, Resource]) -> Value:
    return frozenset(_norm(c["subscriberId"]) for c in _of_type(ix, "Coverage") if c.get("subscriberId"))


def condition_codes(ix: dict[str, Resource]) -> Value:
    return _codes(c.get("code", {}) for c in _of_type(ix, "Condition"))


def allergy_codes(ix: dict[str, Resource]) -> Value:
    return _codes(a.get("code", {}) for a in _of_type(ix, "AllergyIntolerance"))


@dataclass(frozen=True)
class FieldSpec:
    name: str
    extract: Callable[[dict[str, Resource]], Value]
    mode: str = "equal"


FIELDS = (
    FieldSpec("patient.identifiers", patient_identifiers, "subset"),
    FieldSpec("patient.names", names, "subset"),
    FieldSpec("patient.birthDate", birth_date),
    FieldSpec("patient.gender", gender),
    FieldSpec("patient.address", address),
    FieldSpec("encounter.class", encounter_class),
    FieldSpec("encounter.status", encounter_status),
    FieldSpec("encounter.period.start", period_start),
    FieldSpec("encounter.period.end", period_end),
    FieldSpec("encounter.location", location, "subset"),
    FieldSpec("encounter.dischargeDisposition", discharge_disposition),
    FieldSpec("practitioner.identifiers", practitioner_identifiers, "subset"),
    FieldSpec("coverage.payor", coverage_payor),
    FieldSpec("coverage.subscriber", coverage_subscriber),
    FieldSpec("condition.codes", condition_codes),
    FieldSpec("allergy.codes", allergy_codes),
)


def _empty(value: Value) -> bool:
    return value is None or value == "" or value == frozenset()


def agrees(spec: FieldSpec, ours: Value, theirs: Value) -> bool:
    if spec.mode == "subset" and isinstance(ours, frozenset) and isinstance(theirs, frozenset):
        return bool(ours) and ours <= theirs
    return ours == theirs


@dataclass
class Tally:
    compared: int = 0
    agreed: int = 0
    disagreements: list[str] = field(default_factory=list)

    @property
    def percent(self) -> float:
        return 100.0 * self.agreed / self.compared if self.compared else 100.0


def compare(case: str, ours: dict[str, Any], reference: dict[str, Any], tallies: dict[str, Tally]) -> None:
    mine, theirs = _index(ours), _index(reference)
    for spec in FIELDS:
        a, b = spec.extract(mine), spec.extract(theirs)
        if _empty(a) and _empty(b):
            continue
        tally = tallies.setdefault(spec.name, Tally())
        tally.compared += 1
        if agrees(spec, a, b):
            tally.agreed += 1
        else:
            tally.disagreements.append(case)


def table(tallies: dict[str, Tally]) -> str:
    lines = [f"{'field':34} {'compared':>8} {'agreed':>7} {'%':>6}"]
    for spec in FIELDS:
        t = tallies.get(spec.name, Tally())
        lines.append(f"{spec.name:34} {t.compared:8d} {t.agreed:7d} {t.percent:6.1f}")
    return "\n".join(lines)


def load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded
