"""Which vendors may take an order, in which order, and why the others may not (pure).

A vendor fits when its kind is the order's service, it has the capability, it serves the
patient's ZIP or county, the window starts within its hours (days and time of day, in the
window's own UTC offset), and it has capacity left on that day. Fitting vendors are offered
in-network first (the order's payer among the vendor's networks), then by on-time rate (only
with enough finished orders to judge), then by rank, then by id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from carehub.streams.routing.model import WEEKDAYS, Recipient

#: Finished orders a vendor needs before its on-time rate orders the offers.
MIN_HISTORY = 5


@dataclass(frozen=True, slots=True)
class Need:
    service: str
    capability: str
    zip: str
    county: str
    payer: str
    window_start: datetime


@dataclass(frozen=True, slots=True)
class Candidate:
    vendor: Recipient
    why: str


def _minutes(hhmm: str) -> int:
    hours, _, minutes = hhmm.partition(":")
    return int(hours) * 60 + int(minutes)


def unfit(vendor: Recipient, need: Need, booked: int) -> str | None:
    """Why ``vendor`` cannot take the order (None when it can); ``booked``: its orders that day."""
    v = vendor.vendor
    if v is None or vendor.kind != need.service:
        return f"not a {need.service} vendor"
    if need.capability not in v.capabilities:
        return f"no {need.capability}"
    if need.zip[:5] not in v.zips and need.county not in v.counties:
        return f"does not serve ZIP {need.zip or '?'} / county {need.county or '?'}"
    day = WEEKDAYS[need.window_start.weekday()]
    if v.hours.days and day not in v.hours.days:
        return f"does not work on {day}"
    at = need.window_start.hour * 60 + need.window_start.minute
    if not _minutes(v.hours.start) <= at < _minutes(v.hours.end):
        return f"closed at {need.window_start:%H:%M} (hours {v.hours.start}-{v.hours.end})"
    if v.capacity_per_day is not None and booked >= v.capacity_per_day:
        return f"full on {need.window_start:%Y-%m-%d} ({booked} of {v.capacity_per_day})"
    return None


def candidates(
    need: Need,
    directory: Iterable[Recipient],
    tried: Iterable[str] = (),
    booked: Mapping[str, int] | None = None,
    on_time: Mapping[str, tuple[int, int]] | None = None,
) -> tuple[list[Candidate], dict[str, str]]:
    """(vendors to offer to, best first, with why; vendor id -> why not) for one order.

    ``tried``: vendors already offered this order; ``booked``: vendor -> orders on the window's day;
    ``on_time``: vendor -> (on time, finished) for this service.
    """
    done = set(tried)
    booked = booked or {}
    on_time = on_time or {}
    fit: list[tuple[tuple[int, float, int, str], Candidate]] = []
    refused: dict[str, str] = {}
    for vendor in directory:
        if vendor.vendor is None or vendor.kind != need.service:
            continue
        if vendor.id in done:
            refused[vendor.id] = "already offered this order"
            continue
        why_not = unfit(vendor, need, booked.get(vendor.id, 0))
        if why_not is not None:
            refused[vendor.id] = why_not
            continue
        in_network = bool(need.payer) and need.payer in vendor.vendor.networks
        good, finished = on_time.get(vendor.id, (0, 0))
        rate = good / finished if finished >= MIN_HISTORY else 0.0
        why = ", ".join(
            part
            for part in (
                f"in network {need.payer}" if in_network else "",
                f"on time {good}/{finished}" if finished >= MIN_HISTORY else "",
                f"rank {vendor.vendor.rank}",
            )
            if part
        )
        key = (0 if in_network else 1, -rate, vendor.vendor.rank, vendor.id)
        fit.append((key, Candidate(vendor, f"{need.capability} in area, {why}")))
    fit.sort(key=lambda item: item[0])
    return [c for _, c in fit], refused
