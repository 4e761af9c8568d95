"""Gap detection, redeliveries, heartbeat timeouts and recovery accounting (pure decisions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from carehub.streams.subscriptions.observe import Observed, after_recovery, check_heartbeat, observe, plan_recovery
from carehub.streams.subscriptions.state import SubscriptionState

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def started() -> SubscriptionState:
    return observe(SubscriptionState("ehr", "adt"), Observed("handshake", at(0), 0)).state


def test_handshake_makes_the_subscription_healthy_and_counts_from_its_number() -> None:
    state = started()
    assert (state.health, state.last_event_number, state.missing) == ("healthy", 0, ())


def test_consecutive_events_are_fresh_and_a_skipped_number_is_a_gap() -> None:
    first = observe(started(), Observed("event-notification", at(1), 1, (1,)))
    assert (first.fresh, first.gap, first.state.health) == ((1,), (), "healthy")
    jumped = observe(first.state, Observed("event-notification", at(2), 4, (4,)))
    assert jumped.fresh == (4,)
    assert jumped.gap == (2, 3)
    assert jumped.state.health == "unhealthy" and jumped.state.reason == "events missing: 2..3 (2)"


def test_a_late_missing_event_fills_the_gap_and_a_redelivery_is_not_fresh() -> None:
    gap = observe(
        observe(started(), Observed("event-notification", at(1), 2, (2,))).state,
        Observed("event-notification", at(2), 2, (2,)),
    )
    assert gap.fresh == () and gap.state.missing == (1,)
    late = observe(gap.state, Observed("event-notification", at(3), 2, (1,)))
    assert late.fresh == (1,) and late.state.health == "healthy" and late.state.missing == ()


def test_a_heartbeat_ahead_of_what_was_received_reveals_lost_events() -> None:
    beat = observe(started(), Observed("heartbeat", at(5), 2))
    assert beat.gap == (1, 2) and beat.state.last_heartbeat_at == at(5)


def test_heartbeat_overdue_only_after_period_times_grace_and_recovery_once_per_period() -> None:
    state = observe(started(), Observed("heartbeat", at(10), 0)).state
    assert not check_heartbeat(state, T0 + timedelta(seconds=70), 60, 1.5).recover
    overdue = check_heartbeat(state, T0 + timedelta(seconds=101), 60, 1.5)
    assert overdue.recover and overdue.state.health == "unhealthy"
    assert overdue.reason.startswith("heartbeat overdue: nothing for 91s")
    tried = after_recovery(overdue.state, (), 0, at(101), "search")
    assert not check_heartbeat(tried, T0 + timedelta(seconds=120), 60, 1.5).recover
    assert check_heartbeat(tried, T0 + timedelta(seconds=162), 60, 1.5).recover
    assert tried.health == "unhealthy", "still silent: recovering does not make it healthy"


def test_never_heard_from_is_not_overdue() -> None:
    check = check_heartbeat(SubscriptionState("ehr", "adt"), T0, 1, 1)
    assert not check.recover and check.state.health == "unknown"


def test_recovery_plan_and_accounting() -> None:
    state = observe(started(), Observed("event-notification", at(1), 3, (3,))).state
    plan = plan_recovery(state, supports_events=True)
    assert (plan.method, plan.since_number, plan.until_number) == ("events", 1, 2)
    assert plan_recovery(state, supports_events=False).method == "search"
    partly = after_recovery(state, (1,), 3, at(2), "$events")
    assert partly.missing == (2,) and partly.health == "unhealthy"
    done = after_recovery(partly, (2,), 4, at(3), "$events")
    assert done.missing == (4,), "the server counts an event not seen yet"
    final = after_recovery(done, (4,), 4, at(4), "$events")
    assert (final.health, final.recovered, final.last_event_number) == ("healthy", 3, 4)


def test_state_round_trips_through_json() -> None:
    state = observe(started(), Observed("event-notification", at(1), 3, (3,))).state
    assert SubscriptionState.from_json(state.to_json()) == state
