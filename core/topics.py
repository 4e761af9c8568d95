"""Topic names. Every name carries a configurable prefix."""

from __future__ import annotations

from dataclasses import dataclass

#: Delivery retry topics, one per backoff tier (attempt n waits on tier min(n, RETRY_TIERS)).
RETRY_TIERS = 4


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str = "carehub."

    @property
    def hl7v2_inbound(self) -> str:
        return f"{self.prefix}hl7v2.inbound"

    @property
    def care_events(self) -> str:
        return f"{self.prefix}care.events"

    @property
    def deliveries(self) -> str:
        return f"{self.prefix}deliveries"

    @property
    def delivery_outcomes(self) -> str:
        return f"{self.prefix}delivery.outcomes"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}deadletter"

    def delivery_retry(self, tier: int) -> str:
        return f"{self.prefix}deliveries.retry.{tier}"

    @property
    def delivery_dead_letters(self) -> str:
        return f"{self.prefix}deliveries.deadletter"

    @property
    def task_events(self) -> str:
        return f"{self.prefix}task.events"

    def all(self) -> list[str]:
        return [
            self.hl7v2_inbound,
            self.care_events,
            self.deliveries,
            self.delivery_outcomes,
            self.dead_letters,
            *(self.delivery_retry(tier) for tier in range(1, RETRY_TIERS + 1)),
            self.delivery_dead_letters,
            self.task_events,
        ]
