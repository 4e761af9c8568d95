"""Agreement with other converters (msfc, gcphdh) on the fields that matter, found by glob."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from carehub.mappings import convert_text
from tests.mappings.conftest import golden_pairs, is_adt, read_message
from tests.mappings.golden import FIELDS, Tally, compare, load, table

HERE = Path(__file__).resolve().parent


def _levels() -> dict[str, float]:
    loaded: dict[str, float] = yaml.safe_load((HERE / "agreement-levels.yaml").read_text(encoding="utf-8"))
    return loaded


def test_agreement_with_reference_converters(corpus_dir: Path) -> None:
    tallies: dict[str, Tally] = {}
    pairs = [(hl7, ref) for hl7, ref in golden_pairs() if is_adt(read_message(hl7))]
    assert len(pairs) >= 40, "the corpus should hold at least 40 ADT messages with expected outputs"
    for hl7, ref in pairs:
        result = convert_text(read_message(hl7))
        compare(hl7.name.removesuffix(".hl7"), result.bundle, load(ref), tallies)
    print("\n" + table(tallies))
    levels = _levels()
    assert set(levels) == {spec.name for spec in FIELDS}
    below = {
        name: f"{tallies[name].percent:.1f} < {minimum} ({', '.join(tallies[name].disagreements)})"
        for name, minimum in levels.items()
        if name in tallies and round(tallies[name].percent, 1) < minimum
    }
    assert not below, f"agreement dropped: {below}"


def test_every_disagreement_case_is_a_corpus_file(corpus_dir: Path) -> None:
    """The known-disagreements list must name real cases, so it cannot rot silently."""
    entries = yaml.safe_load((HERE / "known-disagreements.yaml").read_text(encoding="utf-8"))["disagreements"]
    stems = {p.name.removesuffix(".hl7") for p, _ in golden_pairs()}
    for entry in entries:
        assert entry["reason"].strip()
        for case in entry["cases"]:
            matches = [s for s in stems if s.startswith(case[:-1])] if case.endswith("*") else [case] * (case in stems)
            assert matches, f"known disagreement names no corpus file: {case}"


def test_reference_schema_failures(corpus_dir: Path) -> None:
    """Exactly the references listed as schema failures fail the R4 schema; ours never do."""
    from carehub.mappings.validation import validate_resource

    listed = yaml.safe_load((HERE / "known-disagreements.yaml").read_text(encoding="utf-8"))["schema_failures"]
    failing = set()
    for hl7, ref in golden_pairs():
        if any(validate_resource(e["resource"]) for e in load(ref).get("entry", [])):
            failing.add(hl7.name.removesuffix(".hl7"))
    assert failing == set(listed)


@pytest.mark.parametrize("name", [spec.name for spec in FIELDS])
def test_comparison_can_fail(name: str) -> None:
    """Each field extractor sees a difference when one is planted (the golden test is not vacuous)."""
    spec = next(s for s in FIELDS if s.name == name)
    ours = {"resourceType": "Bundle", "entry": []}
    theirs = {"resourceType": "Bundle", "entry": [{"resource": r} for r in _planted()]}
    tallies: dict[str, Tally] = {}
    compare("planted", ours, theirs, tallies)
    assert tallies[spec.name].compared == 1 and tallies[spec.name].agreed == 0


def _planted() -> list[dict[str, object]]:
    code = {"coding": [{"code": "X1"}]}
    return [
        {
            "resourceType": "Patient",
            "id": "p",
            "identifier": [{"value": "1"}],
            "name": [{"family": "A", "given": ["B"]}],
            "birthDate": "2000",
            "gender": "male",
            "address": [{"line": ["1 St"], "city": "C", "postalCode": "9"}],
        },
        {"resourceType": "Location", "id": "l", "name": "WARD"},
        {
            "resourceType": "Encounter",
            "id": "e",
            "class": {"code": "IMP"},
            "status": "finished",
            "period": {"start": "2020-01-01T00:00:00Z", "end": "2020-01-02T00:00:00Z"},
            "location": [{"location": {"reference": "Location/l"}, "status": "active"}],
            "hospitalization": {"dischargeDisposition": code},
        },
        {"resourceType": "Practitioner", "id": "pr", "identifier": [{"value": "NPI1"}]},
        {"resourceType": "Organization", "id": "o", "name": "Payer"},
        {"resourceType": "Coverage", "id": "c", "payor": [{"reference": "Organization/o"}], "subscriberId": "S1"},
        {"resourceType": "Condition", "id": "d", "code": code},
        {"resourceType": "AllergyIntolerance", "id": "a", "code": code},
    ]
