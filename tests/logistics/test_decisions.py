"""The pure parts of the cascade: which vendor is offered first, and the one next step of an order."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from carehub.streams.logistics.cascade import OfferView, OrderView, advance
from carehub.streams.logistics.place import discharge_location
from carehub.streams.logistics.select import Need, candidates
from carehub.streams.routing.load import load_recipients
from carehub.streams.routing.model import Recipient
from tests.conftest import CONFIG
from tests.packet.events import discharge

CENTRAL = timezone(timedelta(hours=-6))
NOW = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)


def directory() -> list[Recipient]:
    return list(load_recipients(Path(CONFIG) / "recipients.yaml").values())


def need(**changes: object) -> Need:
    base = Need("nemt", "wheelchair", "62704", "17167", "PAYER-ACME", datetime(2026, 12, 2, 10, 0, tzinfo=CENTRAL))
    return replace(base, **changes)  # type: ignore[arg-type]


def test_in_network_rank_then_on_time_rate_order_the_offers() -> None:
    found, refused = candidates(need(), directory())
    assert [c.vendor.id for c in found] == ["nemt-metro", "nemt-prairie"]
    assert "in network PAYER-ACME" in found[0].why and refused == {}
    # Prairie's record (9 of 10 on time) beats Metro's (2 of 6) among in-network vendors
    found, _ = candidates(need(), directory(), on_time={"nemt-metro": (2, 6), "nemt-prairie": (9, 10)})
    assert [c.vendor.id for c in found] == ["nemt-prairie", "nemt-metro"]
    # too little history to judge: rank decides
    found, _ = candidates(need(), directory(), on_time={"nemt-metro": (0, 2), "nemt-prairie": (4, 4)})
    assert [c.vendor.id for c in found][0] == "nemt-metro"


def test_capability_area_hours_capacity_and_tried_vendors_are_refused_with_why() -> None:
    _, refused = candidates(need(capability="stretcher"), directory())
    assert refused == {"nemt-metro": "no stretcher"}
    _, refused = candidates(need(zip="60601", county="17031"), directory())
    assert set(refused) == {"nemt-metro", "nemt-prairie"} and "does not serve ZIP 60601" in refused["nemt-metro"]
    sunday = datetime(2026, 12, 6, 10, 0, tzinfo=CENTRAL)
    found, refused = candidates(need(window_start=sunday), directory())
    assert refused["nemt-metro"] == "does not work on sun" and [c.vendor.id for c in found] == ["nemt-prairie"]
    late = datetime(2026, 12, 2, 21, 0, tzinfo=CENTRAL)  # 21:00 in the window's own offset
    _, refused = candidates(need(window_start=late), directory())
    assert refused["nemt-metro"] == "closed at 21:00 (hours 06:00-20:00)"
    found, refused = candidates(need(), directory(), tried=["nemt-metro"], booked={"nemt-prairie": 30})
    assert found == [] and refused["nemt-metro"] == "already offered this order"
    assert refused["nemt-prairie"].startswith("full on 2026-12-02 (30 of 30)")


def order(*offers: OfferView, state: str = "offered", **changes: object) -> OrderView:
    start = datetime(2026, 12, 2, 16, 0, tzinfo=UTC)
    base = OrderView("o", state, start, start + timedelta(hours=2), 3, 3600.0, offers)
    return replace(base, **changes)  # type: ignore[arg-type]


def offer(state: str = "offered", task: str | None = "requested", **changes: object) -> OfferView:
    return replace(OfferView("x", "v", 1, state, NOW + timedelta(minutes=30), task), **changes)  # type: ignore[arg-type]


def test_the_next_step_of_an_order() -> None:
    assert advance(order(state="open"), NOW).step == "next-vendor"  # type: ignore[union-attr]
    assert advance(order(offer()), NOW) is None, "offered, no answer yet, window not over"
    assert advance(order(offer(task="accepted")), NOW).step == "accepted"  # type: ignore[union-attr]
    declined = advance(order(offer(task="rejected", reason="no van")), NOW)
    assert declined is not None and (declined.step, declined.offer_state, declined.reason) == ("declined", "declined",
                                                                                               "no van")  # fmt: skip
    assert advance(order(offer()), NOW + timedelta(minutes=30)).step == "expired"  # type: ignore[union-attr]
    dropped = advance(order(offer("accepted", "failed"), state="accepted"), NOW)
    assert dropped is not None and dropped.step == "dropped" and dropped.order_state == "open"
    scheduled = advance(order(offer("accepted", "accepted", business_status="scheduled"), state="accepted"), NOW)
    assert scheduled is not None and scheduled.step == "scheduled"
    waited = order(offer("accepted", "accepted"), state="accepted", accepted_at=NOW)
    assert advance(waited, NOW + timedelta(minutes=59)) is None
    assert advance(waited, NOW + timedelta(hours=1)).alert == "schedule"  # type: ignore[union-attr]
    assert advance(replace(waited, schedule_alerted=True), NOW + timedelta(hours=1)) is None, "one alert"
    past = datetime(2026, 12, 2, 18, 1, tzinfo=UTC)
    assert advance(order(offer("scheduled", "in-progress"), state="scheduled"), past).alert == "window"  # type: ignore[union-attr]
    late = advance(order(offer("scheduled", "completed"), state="scheduled"), past)
    assert late is not None and late.step == "completed-late" and late.late
    tried = order(offer("declined", "rejected"), replace(offer("expired"), seq=2), replace(offer("declined"), seq=3),
                  state="open")  # fmt: skip
    assert advance(tried, NOW).step == "exhausted", "max_offers reached"  # type: ignore[union-attr]
    assert advance(order(state="completed"), NOW) is None and advance(order(state="cancelled"), NOW) is None


def test_the_place_of_an_order_is_the_discharge_location_the_mapping_read_from_pv1_37() -> None:
    event = discharge()  # PV1-37 is HH01&Sunrise Home Health (a CWE in DLD.1)
    assert discharge_location(event) == "Sunrise Home Health"
    assert discharge_location(replace(event, bundle={"resourceType": "Bundle", "entry": []})) == ""
