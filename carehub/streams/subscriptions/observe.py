"""What a notification or a timer tick means for a subscription (pure, with reasons).

Event numbers count from the subscription's start (handshakes and heartbeats
are not counted). A number above the last one accounted for, with numbers
skipped in between, is a gap; so is a heartbeat or status whose
events-since-subscription-start is ahead of what was received. Numbers at or
below the last one that are not known missing are redeliveries. A heartbeat
overdue by ``period × grace`` makes the subscription unhealthy until the
source is heard from again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from carehub.streams.subscriptions.state import HEALTHY, UNHEALTHY, SubscriptionState, parse_time

#: Known-missing numbers kept at most (older ones are reported as lost in the reason).
MAX_MISSING = 1000


@dataclass(frozen=True, slots=True)
class Observed:
    kind: str
    at: str
    events_since_start: int | None = None
    numbers: tuple[int, ...] = ()
    subscription_ref: str = ""
    status: str = ""


@dataclass(frozen=True, slots=True)
class Observation:
    state: SubscriptionState
    #: event numbers of this notification to process (not redeliveries)
    fresh: tuple[int, ...]
    #: numbers newly found missing
    gap: tuple[int, ...]
    reason: str


def _health(state: SubscriptionState, missing: tuple[int, ...], note: str) -> SubscriptionState:
    if missing:
        shown = f"{missing[0]}" if len(missing) == 1 else f"{missing[0]}..{missing[-1]} ({len(missing)})"
        return replace(state, missing=missing, health=UNHEALTHY, reason=f"events missing: {shown}")
    return replace(state, missing=(), health=HEALTHY, reason=note)


def observe(state: SubscriptionState, note: Observed) -> Observation:
    """Account for one received notification."""
    base = replace(
        state,
        subscription_ref=note.subscription_ref or state.subscription_ref,
        status=note.status or state.status,
        last_notification_at=note.at,
        last_heartbeat_at=note.at if note.kind == "heartbeat" else state.last_heartbeat_at,
    )
    if note.kind == "handshake":
        start = note.events_since_start or 0
        fresh_state = replace(base, last_event_number=start)
        return Observation(_health(fresh_state, (), "handshake accepted"), (), (), f"handshake: counting from {start}")
    known_missing = set(state.missing)
    fresh = tuple(n for n in sorted(set(note.numbers)) if n > state.last_event_number or n in known_missing)
    highest = max([state.last_event_number, *note.numbers, note.events_since_start or 0])
    skipped = set(range(state.last_event_number + 1, highest + 1)) - set(note.numbers)
    gap = tuple(sorted(skipped))
    missing = tuple(sorted((known_missing - set(note.numbers)) | skipped))[-MAX_MISSING:]
    updated = _health(replace(base, last_event_number=highest), missing, f"{note.kind} received")
    redelivered = len(set(note.numbers)) - len(fresh)
    reason = f"{note.kind}: {len(fresh)} new, {redelivered} redelivered, {len(gap)} newly missing"
    return Observation(updated, fresh, gap, reason)


@dataclass(frozen=True, slots=True)
class HeartbeatCheck:
    state: SubscriptionState
    recover: bool
    reason: str


def check_heartbeat(state: SubscriptionState, now: datetime, period_s: float, grace: float) -> HeartbeatCheck:
    """Is the source overdue? Recover at most once per period while it stays silent."""
    last = parse_time(state.last_notification_at)
    if last is None:
        return HeartbeatCheck(state, False, "never heard from; waiting for the handshake")
    silent = (now - last).total_seconds()
    if silent <= period_s * grace:
        return HeartbeatCheck(state, False, f"heard from {silent:.0f}s ago")
    reason = f"heartbeat overdue: nothing for {silent:.0f}s (period {period_s:.0f}s)"
    marked = replace(state, health=UNHEALTHY, reason=reason)
    recovered_at = parse_time(state.last_recovery_at)
    due = recovered_at is None or recovered_at < last or (now - recovered_at).total_seconds() >= period_s
    return HeartbeatCheck(marked, due, reason)


@dataclass(frozen=True, slots=True)
class RecoveryPlan:
    """``events``: ask $events for [since, until] (until None = up to the server's count);
    ``search``: search by _lastUpdated from ``since_time``."""

    method: str
    since_number: int
    until_number: int | None
    since_time: str


def plan_recovery(state: SubscriptionState, supports_events: bool) -> RecoveryPlan:
    since = state.missing[0] if state.missing else state.last_event_number + 1
    until = state.missing[-1] if state.missing else None
    since_time = state.last_recovery_at or state.last_notification_at
    return RecoveryPlan("events" if supports_events else "search", since, until, since_time)


def after_recovery(
    state: SubscriptionState, recovered: tuple[int, ...], server_count: int | None, at: str, how: str
) -> SubscriptionState:
    """Account for events recovered; still-missing ones stay missing (and unhealthy)."""
    highest = max(state.last_event_number, server_count or 0)
    skipped = set(range(state.last_event_number + 1, highest + 1))
    missing = tuple(sorted((set(state.missing) | skipped) - set(recovered)))
    if how == "search":
        missing = ()  # a search returns current state; numbered events cannot be told apart
    updated = replace(state, last_event_number=highest, last_recovery_at=at, recovered=state.recovered + len(recovered))
    if missing:
        return _health(updated, missing, "")
    if state.reason.startswith("heartbeat overdue"):
        return replace(updated, missing=(), reason=f"{state.reason}; caught up by {how}")
    return replace(updated, missing=(), health=HEALTHY, reason=f"recovered {len(recovered)} event(s) by {how}")
