"""The logistics tables on SQLite and PostgreSQL: the database keeps an order with one vendor at a time."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

from carehub.core.clock import set_clock
from carehub.core.records import Delivery
from carehub.journal import Journal
from carehub.journal.logistics import OfferRow, Order
from carehub.scorecard.worklists import worklists


def _order(order_id: str) -> Order:
    return Order(
        id=order_id, patient_key="RGH|J1", service="dme", capability="oxygen", payer="", zip="62704", county="",
        window_start="2026-12-02T07:00:00-06:00", window_end="2026-12-02T10:00:00-06:00", offer_s=600.0,
        schedule_s=3600.0, max_offers=3, notify=(),
    )  # fmt: skip


def _offer(order_id: str, seq: int, vendor: str) -> OfferRow:
    return OfferRow(f"{order_id}-{seq}", order_id, seq, vendor, "offered", "2026-12-01T12:00:00Z",
                    "2026-12-01T12:10:00Z", None, "", None)  # fmt: skip


def test_an_order_is_never_held_by_two_vendors(journal: Journal) -> None:
    order_id = uuid.uuid4().hex
    store = journal.logistics
    assert store.place(_order(order_id), "2026-12-01T12:00:00Z")
    assert not store.place(_order(order_id), "2026-12-01T12:00:01Z"), "placing again is a no-op"
    assert store.add_offer(_offer(order_id, 1, "dme-a"))
    assert not store.add_offer(_offer(order_id, 2, "dme-b")), "a second holder is refused by the unique index"
    assert not store.add_offer(replace_id(_offer(order_id, 1, "dme-b"))), "the same seq is never offered twice"
    assert store.move_offer(f"{order_id}-1", "offered", "declined", "2026-12-01T12:05:00Z", "no stock")
    assert not store.move_offer(f"{order_id}-1", "offered", "accepted", "2026-12-01T12:06:00Z", ""), "stale move"
    assert store.add_offer(_offer(order_id, 2, "dme-b")), "after the decline the next vendor may hold it"
    assert [(o.vendor_id, o.state) for o in store.offers(order_id)] == [("dme-a", "declined"), ("dme-b", "offered")]
    order = store.get(order_id)
    assert order is not None and store.move(order_id, order.version, {"state": "offered"})
    assert not store.move(order_id, order.version, {"state": "exhausted"}), "a worker with a stale version loses"


def test_one_worker_holds_the_timer_lease_until_it_runs_out(journal: Journal) -> None:
    name = uuid.uuid4().hex
    store = journal.logistics
    assert store.take_lease("a", "2026-12-01T12:00:00Z", "2026-12-01T12:00:15Z", name)
    assert not store.take_lease("b", "2026-12-01T12:00:05Z", "2026-12-01T12:00:20Z", name)
    assert store.take_lease("a", "2026-12-01T12:00:10Z", "2026-12-01T12:00:25Z", name), "the holder renews"
    assert store.take_lease("b", "2026-12-01T12:00:26Z", "2026-12-01T12:00:41Z", name), "expired: b takes it"


def replace_id(offer: OfferRow) -> OfferRow:
    return OfferRow(offer.id + "-again", *[getattr(offer, f) for f in OfferRow.__slots__[1:10]])  # type: ignore[attr-defined]


def test_orders_no_vendor_took_and_late_orders_are_on_the_worklist(journal: Journal) -> None:
    store = journal.logistics
    exhausted, late, fine = (uuid.uuid4().hex for _ in range(3))
    for order_id in (exhausted, late, fine):
        store.place(_order(order_id), "2026-12-01T12:00:00Z")
    store.move(exhausted, 1, {"state": "exhausted"})
    store.move(late, 1, {"state": "accepted", "vendor_id": "dme-a", "schedule_alerted": 1})
    store.move(fine, 1, {"state": "accepted", "vendor_id": "dme-b"})
    set_clock(lambda: datetime(2026, 12, 2, tzinfo=UTC))
    try:
        gaps = {g.task_id: g for g in worklists(journal.db, {}) if g.event_kind == "order"}
    finally:
        set_clock(None)
    assert gaps[exhausted].list == "no-vendor" and "arrange it by phone" in gaps[exhausted].next_step
    assert gaps[late].list == "logistics-late" and gaps[late].recipient == "dme-a"
    assert "not scheduled in time" in gaps[late].next_step and fine not in gaps


async def test_two_workers_advancing_one_order_at_once_make_one_offer(journal: Journal) -> None:
    """Two workers (own connections) step the same orders at the same moment, lease or not: one holder each."""
    from carehub.journal import open_journal
    from carehub.streams.logistics.engine import LogisticsEngine
    from carehub.streams.routing.load import load_recipients
    from tests.conftest import CONFIG

    vendors = {
        rid: r for rid, r in load_recipients(Path(CONFIG) / "recipients.yaml").items() if r.kind == "dme"
    }  # fmt: skip
    other = open_journal(journal.db.url)
    sent: list[str] = []

    async def publish(d: Delivery) -> None:
        sent.append(d.delivery_id)

    moment = datetime(2026, 12, 1, 12, tzinfo=UTC)
    engines = [LogisticsEngine(j, lambda: vendors, publish, hub_url="http://hub", clock=lambda: moment, holder=h)
               for j, h in ((journal, "a"), (other, "b"))]  # fmt: skip
    ids = [uuid.uuid4().hex for _ in range(20)]
    for order_id in ids:
        journal.logistics.place(_order(order_id), "2026-12-01T12:00:00Z")
    try:
        for order_id in ids:  # both step the order at once, each on its own connection and thread
            await asyncio.gather(*(asyncio.to_thread(e._advance_order, order_id, moment) for e in engines))
        for order_id in ids:
            offers = journal.logistics.offers(order_id)
            assert [(o.seq, o.vendor_id, o.state) for o in offers] == [(1, "dme-lincoln", "offered")], offers
            assert [s["step"] for s in journal.logistics.steps(order_id)] == ["placed", "offered"]
    finally:
        other.close()
