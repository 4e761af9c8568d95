"""The ``logistics`` channel: the hub's own logistics desk, where an ``order`` delivery is journaled.

Nothing leaves here: the desk reads the order a delivery carries (streams.logistics.place),
journals it (idempotent on the delivery id, so a redelivery places nothing new) and wakes the
logistics engine; a correction of the visit (a cancel) cancels the order and withdraws its offer.
The engine's offers to vendors leave as Task deliveries through the consent gate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from carehub.core.clock import now_iso
from carehub.core.errors import DeliveryError
from carehub.core.records import Delivery
from carehub.journal import Journal
from carehub.streams.logistics.place import order_from_bundle


@dataclass
class LogisticsDesk:
    journal: Callable[[], Journal | None]
    placed: Callable[[], None]
    clock: Callable[[], str] = now_iso

    async def send(self, delivery: Delivery) -> int:
        journal = self.journal()
        if journal is None:
            raise DeliveryError("the logistics desk has no journal yet", permanent=False)
        if delivery.corrects:  # the visit was cancelled (A11/A13): so is its order
            withdrawn = await journal.db.run(journal.logistics.cancel, delivery.corrects, self.clock(),
                                             "the visit was cancelled")  # fmt: skip
            if withdrawn is not None:
                await journal.db.run(journal.tasks.cancel, withdrawn, "the visit was cancelled", "hub:logistics")
            self.placed()
            return 200
        order = order_from_bundle(delivery.payload.value, delivery.delivery_id, delivery.patient_key, delivery.rule_id)
        if delivery.labels:  # the order keeps the labels it was disclosed under: its offers pass the gate on them
            bundle = order.resource or {}
            order = replace(order, resource={**bundle, "meta": {**bundle.get("meta", {}), "security": delivery.labels}})
        await journal.db.run(journal.logistics.place, order, self.clock())
        self.placed()
        return 200

    async def close(self) -> None:
        return None
