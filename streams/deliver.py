"""Deliver with bounded retries, exponential backoff and full jitter."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from connectors.base import Destination
from core.errors import DeliveryError
from core.records import Delivery, DeliveryOutcome

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    initial_s: float = 0.2
    max_s: float = 30.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(max, initial * 2**(attempt-1))]."""
        return rng.uniform(0.0, min(self.max_s, self.initial_s * 2 ** (attempt - 1)))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _outcome(delivery: Delivery, status: str, attempts: int, reason: str, http_status: int | None) -> DeliveryOutcome:
    return DeliveryOutcome(
        delivery_id=delivery.delivery_id,
        idempotency_key=delivery.idempotency_key,
        event_id=delivery.event_id,
        recipient_id=delivery.recipient_id,
        action=delivery.action,
        status=status,
        attempts=attempts,
        reason=reason,
        finished_at=_now(),
        http_status=http_status,
    )


async def deliver(
    delivery: Delivery,
    destination: Destination,
    policy: RetryPolicy,
    sleep: Sleep = asyncio.sleep,
    rng: random.Random | None = None,
) -> DeliveryOutcome:
    """Send until success, a permanent error, or the attempts run out."""
    jitter = rng or random.Random()
    last: DeliveryError | None = None
    for attempt in range(1, policy.max_attempts + 1):
        try:
            status = await destination.send(delivery)
        except DeliveryError as exc:
            last = exc
            if exc.permanent:
                return _outcome(delivery, "failed", attempt, f"permanent: {exc.message}", exc.status)
            if attempt < policy.max_attempts:
                await sleep(policy.backoff(attempt, jitter))
            continue
        return _outcome(delivery, "delivered", attempt, "", status)
    reason = last.message if last else "no attempt made"
    return _outcome(
        delivery, "failed", policy.max_attempts, f"retries exhausted: {reason}", last.status if last else None
    )
