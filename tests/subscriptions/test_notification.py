"""Reading notification Bundles: the R4 Backport corpus examples, R5, and what is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from carehub.adapters.resthook.errors import InvalidJsonError, NotificationError, WrongResourceTypeError, answer_for
from carehub.adapters.resthook.notification import parse_notification, read_bundle

EXPECTED = {  # corpus file -> (type, events-since-start, event numbers, focus present, resources carried)
    "handshake_bundle_example.json": ("handshake", 0, [], False, 0),
    "heartbeat_bundle_example.json": ("heartbeat", 2, [], False, 0),
    "empty_notification_bundle_example.json": ("event-notification", 1, [1], False, 0),
    "id_only_notification_bundle_example.json": ("event-notification", 1, [1], True, 0),
    "full_resource_notification_bundle_example.json": ("event-notification", 1, [1], True, 2),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_backport_examples_are_read(backport: Path, name: str) -> None:
    notification = parse_notification((backport / name).read_bytes())
    kind, count, numbers, has_focus, carried = EXPECTED[name]
    status = notification.status
    assert (status.fhir_version, status.kind, status.events_since_start) == ("r4-backport", kind, count)
    assert notification.event_numbers == numbers
    assert all(bool(e.focus) == has_focus for e in status.events)
    assert status.subscription_ref == "https://fhirserver.org/fhir/Subscription/123"
    assert len(notification.resources) == carried


def test_every_backport_notification_example_is_covered(backport: Path) -> None:
    found = {p.name for p in backport.glob("*bundle_example.json") if "non_conformant" not in p.name}
    assert found == set(EXPECTED)


def test_the_non_conformant_example_is_refused(backport: Path) -> None:
    with pytest.raises(NotificationError, match="request"):
        parse_notification((backport / "empty_notification_bundle_non_conformant_example.json").read_bytes())


def test_r5_subscription_notification() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "subscription-notification",
        "entry": [
            {
                "resource": {
                    "resourceType": "SubscriptionStatus",
                    "status": "active",
                    "type": "event-notification",
                    "eventsSinceSubscriptionStart": 2,
                    "notificationEvent": [{"eventNumber": 2, "focus": {"reference": "http://x/fhir/Encounter/2"}}],
                    "subscription": {"reference": "http://x/fhir/Subscription/123"},
                    "topic": "http://example.org/FHIR/R5/SubscriptionTopic/admission",
                }
            },
            {"fullUrl": "http://x/fhir/Encounter/2", "resource": {"resourceType": "Encounter", "id": "2"}},
        ],
    }
    notification = read_bundle(bundle)
    assert (notification.status.fhir_version, notification.event_numbers) == ("r5", [2])
    assert notification.status.events[0].focus == "http://x/fhir/Encounter/2"
    assert "Encounter/2" in notification.resources


@pytest.mark.parametrize(
    ("body", "error", "status"),
    [
        (b"{not json", InvalidJsonError, 400),
        (b'{"resourceType": "Patient"}', WrongResourceTypeError, 422),
        (b"[]", WrongResourceTypeError, 422),
        (b'{"resourceType": "Bundle", "type": "collection", "entry": []}', NotificationError, 400),
        (b'{"resourceType": "Bundle", "type": "history", "entry": []}', NotificationError, 400),
        (
            b'{"resourceType": "Bundle", "type": "history", "entry": [{"resource": {"resourceType": "Patient"}}]}',
            WrongResourceTypeError,
            422,
        ),
    ],
)
def test_bad_bodies_get_a_4xx_and_an_operation_outcome(body: bytes, error: type[Exception], status: int) -> None:
    with pytest.raises(error) as caught:
        parse_notification(body)
    code, outcome = answer_for(caught.value)
    assert code == status
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["severity"] == "error"


def test_bad_event_numbers_and_types_are_refused(backport: Path) -> None:
    bundle = json.loads((backport / "id_only_notification_bundle_example.json").read_text())
    params = bundle["entry"][0]["resource"]["parameter"]
    params[5]["part"][0]["valueString"] = "seven"
    with pytest.raises(NotificationError, match="not an integer"):
        read_bundle(bundle)
    params[5]["part"][0]["valueString"] = "1"
    params[3]["valueCode"] = "gossip"
    with pytest.raises(NotificationError, match="notification type"):
        read_bundle(bundle)
