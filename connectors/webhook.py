"""Webhook channel: POST the payload as FHIR JSON to the recipient's endpoint.

Headers: ``Idempotency-Key`` (stable across retries and restarts),
``X-Carehub-Delivery`` and, when the recipient has a secret,
``X-Carehub-Timestamp`` and ``X-Carehub-Signature: sha256=<hex>`` over
``"<timestamp>." + body`` so the recipient can verify origin and freshness.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

import aiohttp

from connectors.base import payload_bytes
from core.errors import DeliveryError
from core.records import Delivery

RETRYABLE_STATUS = frozenset({408, 425, 429})


def signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def classify(status: int) -> DeliveryError | None:
    """None for success; otherwise the error with its permanence."""
    if 200 <= status < 300:
        return None
    permanent = 400 <= status < 500 and status not in RETRYABLE_STATUS
    return DeliveryError(f"recipient answered HTTP {status}", permanent=permanent, status=status)


class WebhookDestination:
    def __init__(self, timeout_s: float, secret_for: Callable[[str], str | None] | None = None) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._secret_for = secret_for or (lambda _: None)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    def _headers(self, delivery: Delivery, body: bytes) -> dict[str, str]:
        headers = {
            "Content-Type": delivery.content_type,
            "Idempotency-Key": delivery.idempotency_key,
            "X-Carehub-Delivery": delivery.delivery_id,
        }
        secret = self._secret_for(delivery.recipient_id)
        if secret:
            stamp = str(int(time.time()))
            headers["X-Carehub-Timestamp"] = stamp
            headers["X-Carehub-Signature"] = signature(secret, stamp, body)
        return headers

    async def send(self, delivery: Delivery) -> int:
        body = payload_bytes(delivery)
        try:
            async with self._client().post(
                delivery.endpoint, data=body, headers=self._headers(delivery, body)
            ) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise DeliveryError(f"cannot reach recipient: {type(exc).__name__}", permanent=False) from exc
        error = classify(status)
        if error is not None:
            raise error
        return status

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
