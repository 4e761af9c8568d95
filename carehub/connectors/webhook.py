"""Webhook channel: POST the payload as FHIR JSON to the recipient's endpoint, signed.

Headers: ``Idempotency-Key`` (stable across retries and restarts),
``X-Carehub-Delivery`` and ``X-Carehub-Signature: t=<unix seconds>,v1=<hex>``
where the hex is HMAC-SHA256(secret, ``"<t>." + body``) (the Stripe scheme:
the timestamp is signed with the body, so a recipient that rejects stamps
older than :data:`TOLERANCE_S` also rejects replays). docs/delivery.md has
a recipient's verification snippet.

Refused before anything is sent (permanent, so the delivery dead-letters):
a recipient without a secret, and an endpoint that is not ``https://``
(plain ``http://`` only to loopback, for the demo and tests). Redirects are
never followed: a 3xx is a permanent failure, so a body meant for the
recipient never reaches the address a redirect names.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import traceback
from collections.abc import Callable
from email.utils import parsedate_to_datetime

import aiohttp

from carehub.connectors.base import payload_bytes
from carehub.core.errors import DeliveryError
from carehub.core.records import Delivery
from carehub.core.transport import insecure_url_reason

RETRYABLE_STATUS = frozenset({408, 425, 429})
SIGNATURE_HEADER = "X-Carehub-Signature"
#: How old a signature timestamp a recipient should accept (seconds, either way of its clock).
TOLERANCE_S = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Carehub-Signature`` value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: str, header: str, body: bytes, *, tolerance_s: int = TOLERANCE_S, now: float | None = None) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` within the tolerance (what a recipient checks)."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        stamp = int(fields.get("t", ""))
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - stamp) > tolerance_s:
        return False
    expected = hmac.new(secret.encode(), str(stamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields.get("v1", ""))


def retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds: delta-seconds or an HTTP-date; None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def classify(status: int, retry_after_header: str | None = None) -> DeliveryError | None:
    """None for success; otherwise the error with its permanence (a redirect is not followed: permanent).

    A transient answer (429, 503, ...) with ``Retry-After`` carries it for the retry schedule.
    """
    if 200 <= status < 300:
        return None
    if 300 <= status < 400:
        return DeliveryError(
            f"recipient answered HTTP {status}; redirects are not followed", permanent=True, status=status
        )
    permanent = 400 <= status < 500 and status not in RETRYABLE_STATUS
    wait = None if permanent else retry_after(retry_after_header)
    return DeliveryError(f"recipient answered HTTP {status}", permanent=permanent, status=status, retry_after_s=wait)


def let_go(exc: BaseException) -> None:
    """Clear the locals of the finished frames that ``exc`` and the errors it was raised from hold.

    aiohttp's connection attempt (aiohappyeyeballs) keeps each error in a list its own frame holds: error ->
    traceback -> frame -> list -> error, a cycle that only the cyclic collector frees, and with it whatever
    those frames held (the request, its body, the context of the stage batch that sent it). A recipient that
    is down makes one per attempt; cleared here, reference counting frees them as soon as the error is handled.
    """
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        traceback.clear_frames(link.__traceback__)  # the frames still running (the caller's) are left alone
        link = link.__cause__ or link.__context__


def unreachable(exc: BaseException, what: str) -> DeliveryError:
    """A request that got no HTTP answer, classified (HTTP channels share this).

    Permanent, with the reason, when a resend cannot help until the directory
    is fixed: a malformed URL, a host name that does not resolve, a TLS failure
    (certificate not trusted, handshake refused). Transient otherwise:
    connection refused or reset, timeouts.
    """
    let_go(exc)
    if isinstance(exc, aiohttp.InvalidURL):
        return DeliveryError(f"cannot reach {what}: malformed URL", permanent=True)
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return DeliveryError(f"cannot reach {what}: DNS lookup failed (host not found)", permanent=True)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return DeliveryError(f"cannot reach {what}: TLS failure ({type(exc).__name__})", permanent=True)
    return DeliveryError(f"cannot reach {what}: {type(exc).__name__}", permanent=False)


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
        secret = self._secret_for(delivery.recipient_id)
        if not secret:
            raise DeliveryError("the webhook recipient has no signing secret; nothing is sent unsigned", permanent=True)
        return {
            "Content-Type": delivery.content_type,
            "Idempotency-Key": delivery.idempotency_key,
            "X-Carehub-Delivery": delivery.delivery_id,
            SIGNATURE_HEADER: signature(secret, int(time.time()), body),
        }

    async def send(self, delivery: Delivery) -> int:
        refused = insecure_url_reason(delivery.endpoint)
        if refused is not None:
            raise DeliveryError(f"webhook endpoint refused: {refused}", permanent=True)
        body = payload_bytes(delivery)
        headers = self._headers(delivery, body)
        try:
            async with self._client().post(
                delivery.endpoint, data=body, headers=headers, allow_redirects=False
            ) as response:
                await response.read()
                status, wait = response.status, response.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise unreachable(exc, "recipient") from exc
        error = classify(status, wait)
        if error is not None:
            raise error
        return status

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
