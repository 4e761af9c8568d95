"""The consent matrix as YAML decision tables, found by glob."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from carehub.streams.consent.codes import ACT_CODE, COUNSELING_NOTES, PART2, coding
from carehub.streams.consent.decide import Disclosure, decide
from carehub.streams.consent.model import parse_consent
from tests.consent.consents import consent

CASES = [
    case
    for path in sorted((Path(__file__).parent / "cases").glob("*.yaml"))
    for case in yaml.safe_load(path.read_text())
]
LABELS = {"part2": coding(ACT_CODE, PART2), "counseling": coding(ACT_CODE, COUNSELING_NOTES)}


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_consent_decision(case: dict[str, Any]) -> None:
    d = case["disclosure"]
    disclosure = Disclosure(
        recipient_id=d["recipient"], recipient_kind=d["kind"], action=d["action"], purpose=d["purpose"],
        emergency=d.get("emergency", False), redaction_allowed=d.get("redaction_allowed", False),
    )  # fmt: skip
    consents = [parse_consent(consent(**spec)) for spec in case.get("consents", [])]
    decision = decide([LABELS[name] for name in case["labels"]], disclosure, consents, case.get("now", "2026-11-01"))
    expect = case["expect"]
    assert decision.outcome == expect["outcome"], decision
    if "rule" in expect:
        assert decision.rule == expect["rule"], decision
    if "reason" in expect:
        assert expect["reason"] in decision.reason, decision
    if "consent" in expect:
        assert decision.consent_id == expect["consent"]
    assert decision.reason, "every decision carries its reason"


def test_cases_were_found() -> None:
    assert len(CASES) >= 20
