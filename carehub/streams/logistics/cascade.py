"""The offer cascade as a pure state machine: one order, its offers, the vendor's Task, the time -> one step.

An order is offered to one vendor at a time (an *offer* is a FHIR Task owned by that vendor,
``status=requested``, ``businessStatus=offered``). The vendor answers on the Task: ``accepted``,
``rejected`` (a decline, with ``statusReason``), then ``in-progress`` (or businessStatus
``scheduled``) and ``completed``; ``failed`` or ``cancelled`` after accepting drops the order back
to the cascade. An offer not accepted before it expires is withdrawn. After a decline, an expiry
or a drop the next vendor gets the order; when none is left the order is *exhausted*.

Order states: open -> offered -> accepted -> scheduled -> completed, or exhausted / cancelled.
Offer states: offered -> accepted -> scheduled -> completed, or declined / expired / dropped.
``advance`` returns the one next step (or None when nothing is due); the engine applies it in
one journal transaction and calls again until nothing is due.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

#: Offer states in which the vendor holds the order (at most one offer per order: a unique index).
HOLDING = ("offered", "accepted", "scheduled")
OPEN_ORDER = ("open", "offered", "accepted", "scheduled")
FAILED_TASK = ("rejected", "cancelled", "failed")


@dataclass(frozen=True, slots=True)
class OfferView:
    id: str
    vendor_id: str
    seq: int
    state: str
    expires_at: datetime
    #: The vendor's Task as the journal holds it (None before the offer was delivered).
    task_status: str | None = None
    business_status: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class OrderView:
    id: str
    state: str
    window_start: datetime
    window_end: datetime
    max_offers: int
    schedule_s: float
    offers: tuple[OfferView, ...] = ()
    accepted_at: datetime | None = None
    schedule_alerted: bool = False
    window_alerted: bool = False

    @property
    def holder(self) -> OfferView | None:
        return next((o for o in self.offers if o.state in HOLDING), None)


@dataclass(frozen=True, slots=True)
class Step:
    """What happens next. ``offer_state``: the holder's new state (None: unchanged)."""

    step: str
    order_state: str
    offer_state: str | None = None
    reason: str = ""
    #: The next vendor must be chosen (after this step is applied).
    next_vendor: bool = False
    late: bool = False
    #: An SLA alert only: which flag it sets (schedule / window).
    alert: str = ""


def _task_step(order: OrderView, offer: OfferView, now: datetime) -> Step | None:
    status, scheduled = offer.task_status, offer.business_status == "scheduled" or offer.task_status == "in-progress"
    if status == "completed":
        late = now > order.window_end
        return Step("completed-late" if late else "completed", "completed", "completed", late=late)
    if status in FAILED_TASK:
        if offer.state == "offered":
            return Step("declined", "open", "declined", offer.reason or f"the vendor set the Task {status}", True)
        return Step("dropped", "open", "dropped", offer.reason or f"the vendor set the Task {status}", True)
    if scheduled and offer.state in ("offered", "accepted"):
        return Step("scheduled", "scheduled", "scheduled")
    if status == "accepted" and offer.state == "offered":
        return Step("accepted", "accepted", "accepted")
    return None


def _timer_step(order: OrderView, offer: OfferView, now: datetime) -> Step | None:
    if offer.state == "offered" and now >= offer.expires_at:
        return Step("expired", "open", "expired", "no answer within the offer window", True)
    waited = (now - order.accepted_at).total_seconds() if order.accepted_at is not None else 0.0
    if offer.state == "accepted" and not order.schedule_alerted and waited >= order.schedule_s > 0:
        return Step("accepted-not-scheduled", order.state, reason="accepted but not scheduled in time",
                    alert="schedule")  # fmt: skip
    if offer.state in ("accepted", "scheduled") and not order.window_alerted and now > order.window_end:
        return Step("not-completed-in-window", order.state, reason="the window passed before completion",
                    alert="window")  # fmt: skip
    return None


def advance(order: OrderView, now: datetime) -> Step | None:
    """The next step of ``order`` at ``now``, or None when nothing is due."""
    if order.state not in OPEN_ORDER:
        return None
    offer = order.holder
    if offer is None:
        if len(order.offers) >= order.max_offers:
            return Step("exhausted", "exhausted", reason=f"{len(order.offers)} vendor(s) offered, none took it")
        return Step("next-vendor", "open", next_vendor=True)
    return _task_step(order, offer, now) or _timer_step(order, offer, now)
