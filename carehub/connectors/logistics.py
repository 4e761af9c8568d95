"""The ``logistics`` channel: the hub's own logistics desk, where an ``order`` delivery is journaled.

Nothing leaves here: the desk reads the order a delivery carries (streams.logistics.place),
journals it (idempotent on the delivery id, so a redelivery places nothing new) and wakes the
logistics engine, whose offers to vendors leave as Task deliveries through the consent gate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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
        order = order_from_bundle(delivery.payload, delivery.delivery_id, delivery.patient_key, delivery.rule_id)
        await journal.db.run(journal.logistics.place, order, self.clock())
        self.placed()
        return 200

    async def close(self) -> None:
        return None
