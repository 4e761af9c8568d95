"""Decision tables: every tests/routing/cases/*.yaml is event + config -> recipients, actions, reasons.

A case names a config directory (default: the shipped config/), an event (an
HL7v2 file converted with the real mappings, or the test builder's event)
with field overrides, the signals assumed set, and what must come out:
``planned`` (exact, in order), ``unresolved`` and ``not_applied`` (exact sets),
``not_matched`` (rule ids, exact set) and ``reasons`` (substrings that must
appear in some reason).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from carehub.core.records import CareEvent
from carehub.mappings import convert_text
from carehub.streams.plan import action_key
from carehub.streams.routing.decide import RoutingDecision, decide
from carehub.streams.routing.load import load_routing_map
from tests.conftest import REPO
from tests.streams.events import care_event

CASES = sorted((Path(__file__).parent / "cases").glob("*.yaml"))


def _event(spec: dict[str, Any]) -> CareEvent:
    if "hl7" in spec:
        text = (REPO / spec["hl7"]).read_text(encoding="utf-8")
        event = replace(convert_text(text, validate=False).event, source_hl7=text)
    else:
        event = care_event(spec.get("kind", "admit"), spec.get("encounter_class", "IMP"))
    attributes = {**event.attributes, **spec.get("attributes", {})}
    return replace(event, **spec.get("set", {}), attributes=attributes)


def _outcome(decision: RoutingDecision) -> dict[str, Any]:
    return {
        "planned": [f"{action_key(p)} -> {p.recipient.id} [{p.rule_id}]" for p in decision.planned],
        "unresolved": {f"{u.action} -> {u.target} [{u.rule_id}]" for u in decision.unresolved},
        "not_applied": {f"{n.action} -> {n.recipient_id} [{n.rule_id}]" for n in decision.not_applied},
        "not_matched": {s.rule_id for s in decision.skipped},
        "reasons": " | ".join(
            [p.reason for p in decision.planned]
            + [u.reason for u in decision.unresolved]
            + [n.reason for n in decision.not_applied]
            + [s.reason for s in decision.skipped]
        ),
    }


def test_cases_exist() -> None:
    assert len(CASES) >= 8


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_case(path: Path) -> None:
    case = yaml.safe_load(path.read_text(encoding="utf-8"))
    routing_map = load_routing_map(REPO / case.get("config", "config"))
    decision = decide(_event(case["event"]), routing_map, frozenset(case.get("flags", ())))
    got, want = _outcome(decision), case["expect"]
    assert decision.map_version == routing_map.version
    assert got["planned"] == want.get("planned", [])
    for key in ("unresolved", "not_applied", "not_matched"):
        if key in want or key != "not_matched":
            assert got[key] == set(want.get(key, [])), key
    for reason in want.get("reasons", []):
        assert reason in got["reasons"], f"no reason mentions {reason!r}: {got['reasons']}"
