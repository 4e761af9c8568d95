"""The logistics tables on SQLite and PostgreSQL: the database keeps an order with one vendor at a time."""

from __future__ import annotations

import uuid

from carehub.journal import Journal
from carehub.journal.logistics import OfferRow, Order


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
