"""The one small interface every outbound channel meets."""

from __future__ import annotations

from typing import Protocol

from carehub.core.records import Delivery


class Destination(Protocol):
    """Sends one delivery. Returns the remote status on success.

    Raises core.errors.DeliveryError: ``permanent=True`` for answers that a
    resend cannot fix (4xx other than 408/429), ``permanent=False`` otherwise.
    """

    async def send(self, delivery: Delivery) -> int: ...

    async def close(self) -> None: ...


def payload_bytes(delivery: Delivery) -> bytes:
    """The payload as sent on every JSON channel: compact JSON, identical on every retry (the bytes the
    route stage wrote while nothing has read into it; core.payload)."""
    return delivery.payload.raw
