"""Logistics orders, their offers, every step, and the lease of the worker that runs the timers.

``offers`` has a partial unique index on ``order_id`` over the holding states (offered,
accepted, scheduled): the database, not a process, guarantees an order is never held by two
vendors, whichever worker tries. ``(order_id, seq)`` is unique too, so a worker that restarts
mid-offer re-finds the offer it made instead of making another. Timers are due times in the
rows (``offers.expires_at``, the order's window and schedule deadline), polled by the worker
holding ``logistics_lease``; every transition is a conditional update on the order's
``version``. ``order_steps`` is both the audit trail and the outbox of notifications
(``notified_at`` NULL until published); ``offers.published_at`` is the outbox of offers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from carehub.journal.db import Database
from carehub.journal.tasks import seconds_between

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS orders (
        id TEXT PRIMARY KEY, patient_key TEXT NOT NULL, service TEXT NOT NULL, capability TEXT NOT NULL,
        payer TEXT NOT NULL, zip TEXT NOT NULL, county TEXT NOT NULL, window_start TEXT NOT NULL,
        window_end TEXT NOT NULL, offer_s REAL NOT NULL, schedule_s REAL NOT NULL, max_offers INTEGER NOT NULL,
        notify TEXT NOT NULL, state TEXT NOT NULL, version INTEGER NOT NULL, vendor_id TEXT,
        placed_at TEXT NOT NULL, placed_by TEXT NOT NULL, accepted_at TEXT, scheduled_at TEXT, completed_at TEXT,
        late INTEGER NOT NULL DEFAULT 0, schedule_alerted INTEGER NOT NULL DEFAULT 0,
        window_alerted INTEGER NOT NULL DEFAULT 0, resource TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS orders_by_state ON orders (state)",
    """CREATE TABLE IF NOT EXISTS offers (
        id TEXT PRIMARY KEY, order_id TEXT NOT NULL, seq INTEGER NOT NULL, vendor_id TEXT NOT NULL,
        state TEXT NOT NULL, offered_at TEXT NOT NULL, expires_at TEXT NOT NULL, answered_at TEXT,
        reason TEXT NOT NULL DEFAULT '', published_at TEXT, UNIQUE (order_id, seq))""",
    """CREATE UNIQUE INDEX IF NOT EXISTS offers_one_holder ON offers (order_id)
        WHERE state IN ('offered', 'accepted', 'scheduled')""",
    """CREATE TABLE IF NOT EXISTS order_steps (
        id {serial}, order_id TEXT NOT NULL, at TEXT NOT NULL, step TEXT NOT NULL, vendor_id TEXT NOT NULL,
        detail TEXT NOT NULL, notified_at TEXT)""",
    "CREATE INDEX IF NOT EXISTS order_steps_by_order ON order_steps (order_id, id)",
    """CREATE TABLE IF NOT EXISTS logistics_lease (
        name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at TEXT NOT NULL)""",
]

ORDER_COLUMNS = (
    "id, patient_key, service, capability, payer, zip, county, window_start, window_end, offer_s, schedule_s,"
    " max_offers, notify, state, version, vendor_id, placed_at, placed_by, accepted_at, scheduled_at,"
    " completed_at, late, schedule_alerted, window_alerted, resource"
)


@dataclass(frozen=True, slots=True)
class Order:
    id: str
    patient_key: str
    service: str
    capability: str
    payer: str
    zip: str
    county: str
    #: ISO 8601 with the source's UTC offset (hours are judged in local time); compare via utc.
    window_start: str
    window_end: str
    offer_s: float
    schedule_s: float
    max_offers: int
    notify: tuple[str, ...]
    state: str = "open"
    version: int = 1
    vendor_id: str | None = None
    placed_at: str = ""
    placed_by: str = "hub"
    accepted_at: str | None = None
    scheduled_at: str | None = None
    completed_at: str | None = None
    late: bool = False
    schedule_alerted: bool = False
    window_alerted: bool = False
    #: The order as FHIR: a Bundle (collection) with the ServiceRequest and the Patient.
    resource: dict[str, Any] | None = None

    def summary(self) -> dict[str, Any]:
        """The order without its FHIR resources (for listings)."""
        return {k: getattr(self, k) for k in self.__slots__ if k != "resource"}  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class OfferRow:
    id: str
    order_id: str
    seq: int
    vendor_id: str
    state: str
    offered_at: str
    expires_at: str
    answered_at: str | None
    reason: str
    published_at: str | None
    task_status: str | None = None
    business_status: str = ""
    task_reason: str = ""


def _order(row: tuple[Any, ...]) -> Order:
    values = list(row)
    values[12] = tuple(json.loads(values[12]))
    values[21], values[22], values[23] = bool(values[21]), bool(values[22]), bool(values[23])
    values[24] = json.loads(values[24])
    return Order(*values)


def _task_bits(text: str | None) -> tuple[str, str]:
    if not text:
        return "", ""
    task = json.loads(text)
    codes = [c.get("code", "") for c in task.get("businessStatus", {}).get("coding", [])]
    return (codes[0] if codes else ""), str(task.get("statusReason", {}).get("text", ""))


class LogisticsStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # orders ----------------------------------------------------------------
    def place(self, order: Order, at: str) -> bool:
        """Journal a new order (idempotent on its id); True when it is new."""
        with self.db.transaction():
            added = self.db.execute(
                f"INSERT INTO orders ({ORDER_COLUMNS}) VALUES ({', '.join('?' * 25)}) ON CONFLICT (id) DO NOTHING",
                (
                    order.id, order.patient_key, order.service, order.capability, order.payer, order.zip,
                    order.county, order.window_start, order.window_end, order.offer_s, order.schedule_s,
                    order.max_offers, json.dumps(list(order.notify)), "open", 1, None, at, order.placed_by,
                    None, None, None, 0, 0, 0, json.dumps(order.resource or {}),
                ),
            )  # fmt: skip
            if added:
                self.step(order.id, at, "placed", "", f"{order.service} {order.capability}")
        return bool(added)

    def get(self, order_id: str) -> Order | None:
        rows = self.db.query(f"SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?", (order_id,))
        return _order(rows[0]) if rows else None

    def orders(self, state: str | None = None, patient_key: str | None = None) -> list[Order]:
        clauses, params = [], []
        if state is not None:
            clauses.append("state = ?")
            params.append(state)
        if patient_key is not None:
            clauses.append("patient_key = ?")
            params.append(patient_key)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.db.query(f"SELECT {ORDER_COLUMNS} FROM orders{where} ORDER BY placed_at, id", params)
        return [_order(r) for r in rows]

    def open_ids(self) -> list[str]:
        rows = self.db.query(
            "SELECT id FROM orders WHERE state IN ('open', 'offered', 'accepted', 'scheduled') ORDER BY placed_at"
        )
        return [str(r[0]) for r in rows]

    def move(self, order_id: str, version: int, fields: dict[str, Any]) -> bool:
        """Set ``fields`` when the order is still at ``version`` (one worker wins); bumps the version."""
        sets = ", ".join(f"{k} = ?" for k in fields)
        changed = self.db.execute(
            f"UPDATE orders SET {sets}, version = version + 1 WHERE id = ? AND version = ?",
            (*fields.values(), order_id, version),
        )
        return changed == 1

    def cancel(self, order_id: str, at: str, reason: str) -> str | None:
        """Cancel an open order (its visit was cancelled); the offer withdrawn from its holder, if one.

        Returns the withdrawn offer's id (its Task is cancelled by the caller); None otherwise,
        also when the order is unknown or already finished (idempotent for a redelivered cancel).
        """
        with self.db.transaction():
            rows = self.db.query("SELECT state FROM orders WHERE id = ?", (order_id,))
            if not rows or rows[0][0] not in ("open", "offered", "accepted", "scheduled"):
                return None
            holding = self.db.query(
                "SELECT id, vendor_id FROM offers WHERE order_id = ? AND state IN ('offered', 'accepted', 'scheduled')",
                (order_id,),
            )
            self.db.execute("UPDATE orders SET state = 'cancelled', version = version + 1 WHERE id = ?", (order_id,))
            vendor = ""
            if holding:
                self.db.execute(
                    "UPDATE offers SET state = 'withdrawn', answered_at = ?, reason = ? WHERE id = ?",
                    (at, reason, holding[0][0]),
                )
                vendor = str(holding[0][1])
            self.step(order_id, at, "cancelled", vendor, reason)
        return str(holding[0][0]) if holding else None

    # offers ----------------------------------------------------------------
    def offers(self, order_id: str) -> list[OfferRow]:
        rows = self.db.query(
            "SELECT o.id, o.order_id, o.seq, o.vendor_id, o.state, o.offered_at, o.expires_at, o.answered_at,"
            " o.reason, o.published_at, t.status, t.resource FROM offers o LEFT JOIN tasks t ON t.id = o.id"
            " WHERE o.order_id = ? ORDER BY o.seq",
            (order_id,),
        )
        out = []
        for r in rows:
            business, reason = _task_bits(r[11])
            head = (str(r[0]), str(r[1]), int(r[2]), str(r[3]), str(r[4]), str(r[5]), str(r[6]))
            out.append(OfferRow(*head, r[7], str(r[8]), r[9], r[10], business, reason))
        return out

    def add_offer(self, offer: OfferRow) -> bool:
        """Insert an offer; False when the order already has a holder or this seq (another worker won)."""
        added = self.db.execute(
            "INSERT INTO offers (id, order_id, seq, vendor_id, state, offered_at, expires_at, reason)"
            " VALUES (?, ?, ?, ?, 'offered', ?, ?, '') ON CONFLICT DO NOTHING",
            (offer.id, offer.order_id, offer.seq, offer.vendor_id, offer.offered_at, offer.expires_at),
        )
        return added == 1

    def move_offer(self, offer_id: str, from_state: str, to_state: str, at: str, reason: str) -> bool:
        changed = self.db.execute(
            "UPDATE offers SET state = ?, answered_at = ?, reason = ? WHERE id = ? AND state = ?",
            (to_state, at, reason, offer_id, from_state),
        )
        return changed == 1

    def unpublished_offers(self) -> list[OfferRow]:
        rows = self.db.query(
            "SELECT id, order_id, seq, vendor_id, state, offered_at, expires_at, answered_at, reason, published_at"
            " FROM offers WHERE published_at IS NULL AND state = 'offered' ORDER BY offered_at"
        )
        return [OfferRow(*r) for r in rows]

    def mark_published(self, offer_id: str, at: str) -> None:
        self.db.execute("UPDATE offers SET published_at = ? WHERE id = ? AND published_at IS NULL", (at, offer_id))

    # steps: audit trail and notification outbox ----------------------------
    def step(self, order_id: str, at: str, step: str, vendor_id: str, detail: str) -> None:
        self.db.execute(
            "INSERT INTO order_steps (order_id, at, step, vendor_id, detail) VALUES (?, ?, ?, ?, ?)",
            (order_id, at, step, vendor_id, detail),
        )

    def steps(self, order_id: str) -> list[dict[str, Any]]:
        rows = self.db.query(
            "SELECT id, at, step, vendor_id, detail, notified_at FROM order_steps WHERE order_id = ? ORDER BY id",
            (order_id,),
        )
        keys = ("id", "at", "step", "vendor_id", "detail", "notified_at")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def unnotified(self) -> list[tuple[int, str, str, str, str, str]]:
        """(step id, order id, at, step, vendor id, detail) of every step not yet told to the care team."""
        rows = self.db.query(
            "SELECT id, order_id, at, step, vendor_id, detail FROM order_steps WHERE notified_at IS NULL ORDER BY id"
        )
        return [(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5])) for r in rows]

    def mark_notified(self, step_id: int, at: str) -> None:
        self.db.execute("UPDATE order_steps SET notified_at = ? WHERE id = ? AND notified_at IS NULL", (at, step_id))

    # capacity and performance ----------------------------------------------
    def booked(self, day: str) -> dict[str, int]:
        """Vendor -> orders it holds or completed whose window starts on ``day`` (YYYY-MM-DD, as written)."""
        rows = self.db.query(
            "SELECT vendor_id, COUNT(*) FROM orders WHERE vendor_id IS NOT NULL AND substr(window_start, 1, 10) = ?"
            " AND state IN ('accepted', 'scheduled', 'completed') GROUP BY vendor_id",
            (day,),
        )
        return {str(r[0]): int(r[1]) for r in rows}

    def performance(self, service: str | None = None) -> dict[str, dict[str, Any]]:
        """Vendor -> finished, on time, on-time rate, mean turnaround (placed -> completed, seconds) and declines."""
        where = " AND service = ?" if service else ""
        params = (service,) if service else ()
        rows = self.db.query(
            f"SELECT vendor_id, service, late, placed_at, completed_at FROM orders WHERE state = 'completed'{where}",
            params,
        )
        out: dict[str, dict[str, Any]] = {}
        for vendor, svc, late, placed, completed in rows:
            item = out.setdefault(str(vendor), {"service": svc, "finished": 0, "on_time": 0, "turnaround_s": []})
            item["finished"] += 1
            item["on_time"] += 0 if late else 1
            item["turnaround_s"].append(seconds_between(placed, completed))
        declined = self.db.query(
            "SELECT o.vendor_id, r.service, COUNT(*) FROM offers o JOIN orders r ON r.id = o.order_id"
            f" WHERE o.state IN ('declined', 'expired', 'dropped'){where.replace('service', 'r.service')}"
            " GROUP BY o.vendor_id, r.service",
            params,
        )
        for vendor, svc, count in declined:
            item = out.setdefault(str(vendor), {"service": svc, "finished": 0, "on_time": 0, "turnaround_s": []})
            item["not_taken"] = int(count)
        for item in out.values():
            times = item.pop("turnaround_s")
            item["mean_turnaround_s"] = sum(times) / len(times) if times else None
            item["on_time_rate"] = item["on_time"] / item["finished"] if item["finished"] else None
            item.setdefault("not_taken", 0)
        return out

    # the lease -------------------------------------------------------------
    def take_lease(self, holder: str, now: str, until: str, name: str = "logistics") -> bool:
        """Hold (or renew) the timer lease until ``until``; False while another holder's lease runs."""
        self.db.execute(
            "INSERT INTO logistics_lease (name, holder, expires_at) VALUES (?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at"
            " WHERE logistics_lease.holder = excluded.holder OR logistics_lease.expires_at < ?",
            (name, holder, until, now),
        )
        rows = self.db.query("SELECT holder FROM logistics_lease WHERE name = ?", (name,))
        return bool(rows) and rows[0][0] == holder
