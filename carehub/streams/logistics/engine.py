"""The logistics engine: runs the offer cascade and its timers from the journal, on the worker holding the lease.

Every stream worker runs one; the one holding ``logistics_lease`` (journal.logistics) ticks:
it advances each open order (streams.logistics.cascade.advance, applied in one transaction
per step with a conditional update, so a worker that lost the lease mid-step changes nothing),
then empties two outboxes: offers not yet published go to the deliveries topic as Task
deliveries to their vendor, and steps not yet told go to the order's care team as notifications.
Both leave through the deliveries topic, so every send passes the stream's consent gate
(DeliveryFlow._try -> SendGate.check); their delivery ids are stable, so a worker that died
between publishing and marking publishes the same delivery again and the journal's admit
check lets it reach the recipient once. The clock is injected: tests move time by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from carehub.core.clock import iso
from carehub.core.payload import Payload
from carehub.core.records import Delivery
from carehub.journal import Journal
from carehub.journal.logistics import OfferRow, Order
from carehub.streams.logistics.cascade import OfferView, OrderView, Step, advance
from carehub.streams.logistics.fhir import offer_bundle, step_key, step_message, withdrawal_bundle
from carehub.streams.logistics.select import Need, candidates
from carehub.streams.routing.model import Recipient

log = logging.getLogger(__name__)
FHIR_JSON = "application/fhir+json"
LEASE_S = 15.0
#: Steps a tick applies to one order at most (a decline and the next offer are two).
MAX_STEPS = 8
#: Steps after which the vendor that held the offer gets its Task back as cancelled.
WITHDRAWN = ("expired", "cancelled")
Publish = Callable[[Delivery], Awaitable[None]]
Clock = Callable[[], datetime]


class _Lost(Exception):
    """Another worker moved the order first: roll this step back."""


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _view(order: Order, offers: list[OfferRow]) -> OrderView:
    views = tuple(
        OfferView(
            o.id, o.vendor_id, o.seq, o.state, moment(o.expires_at), o.task_status, o.business_status, o.task_reason
        )  # fmt: skip
        for o in offers
    )
    return OrderView(
        order.id, order.state, moment(order.window_start), moment(order.window_end), order.max_offers,
        order.schedule_s, views, moment(order.accepted_at) if order.accepted_at else None,
        order.schedule_alerted, order.window_alerted,
    )  # fmt: skip


def offer_id(order_id: str, seq: int, vendor_id: str) -> str:
    return hashlib.sha256(f"offer|{order_id}|{seq}|{vendor_id}".encode()).hexdigest()[:32]


class LogisticsEngine:
    def __init__(
        self,
        journal: Journal,
        directory: Callable[[], dict[str, Recipient]],
        publish: Publish,
        *,
        hub_url: str,
        clock: Clock,
        map_version: Callable[[], str] = lambda: "",
        lease_s: float = LEASE_S,
        holder: str = "",
        care_manager: str = "",
    ) -> None:
        """``care_manager``: a directory id told of every step besides the order's own care team."""
        self.journal = journal
        self.store = journal.logistics
        self.directory = directory
        self.publish = publish
        self.hub_url = hub_url
        self.clock = clock
        self.map_version = map_version
        self.lease_s = lease_s
        self.holder = holder or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._wake = asyncio.Event()
        self.care_manager = care_manager

    def kick(self) -> None:
        """Tick soon (an order was placed or a vendor answered)."""
        self._wake.set()

    async def tick(self) -> bool:
        """One round, when this worker holds the lease; False when another worker does."""
        now = self.clock()
        until = now + timedelta(seconds=self.lease_s)
        if not await self.journal.db.run(self.store.take_lease, self.holder, iso(now), iso(until)):
            return False
        for order_id in await self.journal.db.run(self.store.open_ids):
            await self.journal.db.run(self._advance_order, order_id, now)
        await self._publish_offers(now)
        await self._publish_steps(now)
        return True

    async def run(self, interval_s: float = 1.0) -> None:
        while True:
            try:
                await self.tick()
            except Exception as exc:  # a failed round is retried next round, never ends the loop
                log.error("logistics tick failed: %s", type(exc).__name__)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval_s)

    # one order, in the journal's thread ----------------------------------------
    def _advance_order(self, order_id: str, now: datetime) -> None:
        for _ in range(MAX_STEPS):
            order = self.store.get(order_id)
            if order is None:
                return
            offers = self.store.offers(order_id)
            step = advance(_view(order, offers), now)
            if step is None:
                return
            try:
                expired = self._apply(order, offers, step, now)
            except _Lost:
                return
            if expired is not None:  # a late accept is refused at the Task endpoint: the Task is finished
                self.journal.tasks.cancel(expired, "the offer window passed", "hub:logistics")

    def _drop(self, order: Order, now: datetime, reason: str) -> None:
        """Drop the order's offer (never sent), so the cascade goes on with the next vendor."""
        with contextlib.suppress(_Lost):
            self._apply(order, self.store.offers(order.id), Step("dropped", "open", "dropped", reason), now)
        self._advance_order(order.id, now)

    def _apply(self, order: Order, offers: list[OfferRow], step: Step, now: datetime) -> str | None:
        at = iso(now)
        holder = next((o for o in offers if o.state in ("offered", "accepted", "scheduled")), None)
        with self.journal.db.transaction():
            if step.step == "next-vendor":
                self._offer_next(order, offers, now)
                return None
            fields: dict[str, object] = {"state": step.order_state}
            if step.alert:
                fields = {f"{step.alert}_alerted": 1}
            elif step.order_state == "accepted":
                fields["accepted_at"] = at
            elif step.order_state == "scheduled":
                fields["scheduled_at"] = at
                fields["accepted_at"] = order.accepted_at or at
            elif step.order_state == "completed":
                fields.update(completed_at=at, late=1 if step.late else 0, accepted_at=order.accepted_at or at)
            elif step.order_state in ("open", "exhausted"):
                fields["vendor_id"] = None
            if not self.store.move(order.id, order.version, fields):
                raise _Lost
            vendor = holder.vendor_id if holder is not None else ""
            moved = holder is None or step.offer_state is None
            if not moved and holder is not None and step.offer_state is not None:
                moved = self.store.move_offer(holder.id, holder.state, step.offer_state, at, step.reason)
            if not moved:
                raise _Lost
            self.store.step(order.id, at, step.step, vendor, step.reason)
        log.info("order %s: %s (vendor %s)", order.id, step.step, vendor or "-")
        return holder.id if holder is not None and step.step == "expired" else None

    def _offer_next(self, order: Order, offers: list[OfferRow], now: datetime) -> None:
        start = moment(order.window_start)
        need = Need(order.service, order.capability, order.zip, order.county, order.payer, start)
        booked = self.store.booked(order.window_start[:10])
        perf = self.store.performance(order.service)
        on_time = {v: (int(p["on_time"]), int(p["finished"])) for v, p in perf.items()}
        found, refused = candidates(need, self.directory().values(), [o.vendor_id for o in offers], booked, on_time)
        at = iso(now)
        if not found:
            why = "; ".join(f"{v}: {r}" for v, r in sorted(refused.items())) or "no vendor of this kind"
            if not self.store.move(order.id, order.version, {"state": "exhausted", "vendor_id": None}):
                raise _Lost
            self.store.step(order.id, at, "exhausted", "", f"no vendor left ({why})")
            log.warning("order %s exhausted: no vendor left", order.id)
            return
        choice = found[0]
        seq = len(offers) + 1
        expires = now + timedelta(seconds=order.offer_s)
        row = OfferRow(offer_id(order.id, seq, choice.vendor.id), order.id, seq, choice.vendor.id, "offered", at,
                       iso(expires), None, "", None)  # fmt: skip
        if not self.store.add_offer(row) or not self.store.move(
            order.id, order.version, {"state": "offered", "vendor_id": choice.vendor.id}
        ):
            raise _Lost
        self.store.step(order.id, at, "offered", choice.vendor.id, f"offer {seq} until {iso(expires)}: {choice.why}")
        log.info("order %s offered to %s (offer %d)", order.id, choice.vendor.id, seq)

    # outboxes ----------------------------------------------------------------
    async def _publish_offers(self, now: datetime) -> None:
        for row in await self.journal.db.run(self.store.unpublished_offers):
            order = await self.journal.db.run(self.store.get, row.order_id)
            vendor = self.directory().get(row.vendor_id)
            if order is None:
                continue
            if vendor is None:  # removed from the directory since it was chosen: the next vendor gets the order
                log.warning("offer %s: vendor %s is no longer in the directory; dropped", row.id, row.vendor_id)
                await self.journal.db.run(self._drop, order, now, "the vendor is no longer in the directory")
                continue
            payload = offer_bundle(order, vendor, row.id, row.expires_at, self.hub_url, iso(now))
            await self.publish(self._delivery(row.id, order, vendor, "task", payload, "logistics-offer",
                                              f"offer {row.seq} of order {order.id}"))  # fmt: skip
            await self.journal.db.run(self.store.mark_published, row.id, iso(now))

    async def _publish_steps(self, now: datetime) -> None:
        directory = self.directory()
        for step_id, order_id, at, step, vendor, detail in await self.journal.db.run(self.store.unnotified):
            order = await self.journal.db.run(self.store.get, order_id)
            if order is None:
                continue
            for who in dict.fromkeys([*order.notify, *([self.care_manager] if self.care_manager else [])]):
                recipient = directory.get(who)
                if recipient is None:
                    continue
                key = step_key(step_id, order_id, who)
                payload = step_message(order, step, detail, vendor, key, self.hub_url, at)
                await self.publish(self._delivery(key, order, recipient, "notify", payload, "logistics-step",
                                                  f"order {order_id}: {step}"))  # fmt: skip
            if step in WITHDRAWN and vendor in directory:
                await self._withdraw(order, directory[vendor], detail, at)
            await self.journal.db.run(self.store.mark_notified, step_id, iso(now))

    async def _withdraw(self, order: Order, vendor: Recipient, reason: str, at: str) -> None:
        """The vendor's offer was withdrawn: it gets its Task back as cancelled (as a correction would)."""
        offers = await self.journal.db.run(self.store.offers, order.id)
        offer = next((o for o in reversed(offers) if o.vendor_id == vendor.id and o.state in ("expired", "withdrawn")),
                     None)  # fmt: skip
        task = await self.journal.db.run(self.journal.tasks.get, offer.id) if offer is not None else None
        if offer is None or task is None:
            return  # never delivered: nothing to withdraw at the vendor
        key = hashlib.sha256(f"withdrawn|{offer.id}".encode()).hexdigest()[:32]
        payload = withdrawal_bundle(task, offer.id, reason, at)
        await self.publish(self._delivery(key, order, vendor, "task", payload, "logistics-withdrawal",
                                          f"offer {offer.seq} of order {order.id} withdrawn"))  # fmt: skip

    def _delivery(self, key: str, order: Order, to: Recipient, action: str, payload: dict[str, object],
                  rule: str, reason: str) -> Delivery:  # fmt: skip
        return Delivery(
            delivery_id=key,
            idempotency_key=key,
            event_id=f"order:{order.id}",
            patient_key=order.patient_key,
            recipient_id=to.id,
            action=action,
            channel=to.channel,
            endpoint=to.endpoint,
            content_type=FHIR_JSON,
            payload=Payload(payload),
            rule_id=rule,
            map_version=self.map_version(),
            reason=reason,
            labels=list((order.resource or {}).get("meta", {}).get("security", [])),  # Part 2: the gate decides
        )
