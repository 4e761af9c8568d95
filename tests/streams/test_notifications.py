"""Da Vinci notification Bundles: structure, event codes, bundled references."""

from __future__ import annotations

from typing import Any

import pytest

from carehub.streams.notify import EVENT_SYSTEM, Hub, event_coding, notification_bundle
from tests.streams.events import care_event

HUB = Hub(base_url="https://hub.example.org/fhir")


def _bundle(kind: str = "admit", encounter_class: str = "IMP") -> dict[str, Any]:
    return notification_bundle(
        care_event(kind, encounter_class),
        hub=HUB,
        destination="https://pcp.example.org/fhir",
        recipient_name="PCP",
        key="k1",
        timestamp="2026-11-01T16:31:00Z",
    )


@pytest.mark.parametrize(
    ("kind", "encounter_class", "code"),
    [
        ("admit", "IMP", "notification-admit"),
        ("discharge", "IMP", "notification-discharge"),
        ("transfer", "IMP", "notification-transfer"),
        ("register", "EMER", "notification-admit"),
        ("register", "AMB", "notification-outpatient-visit"),
    ],
)
def test_event_codes(kind: str, encounter_class: str, code: str) -> None:
    assert event_coding(care_event(kind, encounter_class)) == {"system": EVENT_SYSTEM, "code": code}


def test_kinds_without_a_davinci_code_keep_the_v2_trigger() -> None:
    coding = event_coding(care_event("update"))
    assert coding["code"] == "A08" and coding["system"].endswith("v2-0003")


def test_bundle_is_a_message_with_header_first_and_references_resolving() -> None:
    bundle = _bundle()
    assert bundle["type"] == "message" and bundle["timestamp"] and bundle["id"]
    header = bundle["entry"][0]["resource"]
    assert header["resourceType"] == "MessageHeader"
    assert header["focus"] == [{"reference": "Encounter/e1"}]
    assert header["meta"]["profile"][0].endswith("admit-notification-messageheader")
    present = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]}
    assert {"Encounter/e1", "Patient/p1", "Location/l1", "Organization/o1"} <= present
    assert "Observation/unrelated" not in present, "only the focus and what it references travel"
    refs = _refs(bundle)
    assert refs and refs <= present, f"dangling: {refs - present}"
    types = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert "Provenance" in types and len(set(present)) == len(bundle["entry"])


def test_same_key_gives_the_same_bundle() -> None:
    assert _bundle() == _bundle()


def _refs(value: Any) -> set[str]:
    if isinstance(value, dict):
        found = {value["reference"]} if isinstance(value.get("reference"), str) else set()
        return found.union(*(_refs(v) for v in value.values())) if value else found
    if isinstance(value, list):
        return set().union(*(_refs(v) for v in value)) if value else set()
    return set()
