"""carehub.streams.dedup: each visit's admit and discharge is routed once, whichever feed brought it."""

from __future__ import annotations

from carehub.streams.dedup import decide, read_seen
from tests.streams.events import care_event


def test_admit_then_the_same_admit_again_is_a_duplicate_with_its_reason() -> None:
    first = decide(care_event(kind="admit", encounter_id="enc-1"), ())
    assert first.route and first.reason == "first admit of this visit"
    again = decide(care_event(kind="admit", encounter_id="enc-1", event_id="ev-resent"), first.seen)
    assert not again.route and "already routed" in again.reason


def test_the_same_event_taken_again_after_a_restart_is_routed_again() -> None:
    """The table write reached the changelog, the deliveries did not: the reprocessed event is routed."""
    event = care_event(kind="admit", encounter_id="enc-1")
    first = decide(event, ())
    again = decide(event, first.seen)
    assert again.route and "reprocessed" in again.reason and again.seen == first.seen


def test_rows_written_before_event_ids_were_kept_still_count() -> None:
    seen = read_seen(["enc-1|admit"])
    assert not decide(care_event(kind="admit", encounter_id="enc-1"), seen).route


def test_discharge_and_other_visits_are_not_duplicates() -> None:
    seen = decide(care_event(kind="admit", encounter_id="enc-1"), ()).seen
    assert decide(care_event(kind="discharge", encounter_id="enc-1"), seen).route
    assert decide(care_event(kind="admit", encounter_id="enc-2"), seen).route


def test_transfers_are_not_deduplicated_and_a_cancel_allows_readmission() -> None:
    seen = decide(care_event(kind="admit", encounter_id="enc-1"), ()).seen
    transfer = decide(care_event(kind="transfer", encounter_id="enc-1"), seen)
    assert transfer.route and decide(care_event(kind="transfer", encounter_id="enc-1"), transfer.seen).route
    cancelled = decide(care_event(kind="cancel-admit", encounter_id="enc-1"), seen)
    assert cancelled.route and cancelled.seen == ()
    assert decide(care_event(kind="admit", encounter_id="enc-1"), cancelled.seen).route
