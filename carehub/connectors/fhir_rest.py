"""FHIR REST channel: notifications to ``[base]/$process-message``, task Bundles as a transaction.

* ``notify`` (a Da Vinci message Bundle): ``POST [base]/$process-message``
  (standards.md §1: 200/202/204 = accepted; 401/404 = do not resend as is;
  429 and 5xx = retry). An endpoint that already ends in ``$process-message``
  is used as given.
* ``task`` (a transaction Bundle holding a ServiceRequest and a Gravity Task):
  ``POST [base]`` so the recipient's server creates both.

Authorization: a static bearer token or SMART Backend Services
(connectors.auth); a 401 drops the cached token and tries once more with a
fresh one before it is treated as permanent. The endpoint must be https://
(http:// to loopback only) and redirects are never followed (a 3xx is a
permanent failure), so neither the payload nor the token goes anywhere
else. Every request carries
``Idempotency-Key`` and ``X-Request-Id`` (the delivery id). fhirclient is a
blocking (requests) client, so the hot path uses aiohttp instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import aiohttp

from carehub.connectors.auth import TokenSource
from carehub.connectors.base import payload_bytes
from carehub.connectors.webhook import classify, unreachable
from carehub.core.errors import DeliveryError
from carehub.core.records import Delivery
from carehub.core.transport import insecure_url_reason

FHIR_JSON = "application/fhir+json"
Options = Callable[[str], Mapping[str, str]]


def target_url(delivery: Delivery) -> str:
    """Where a delivery goes on the recipient's FHIR server."""
    base = delivery.endpoint.rstrip("/")
    if delivery.action == "task":
        return base
    return base if base.endswith("$process-message") else f"{base}/$process-message"


class FhirRestDestination:
    def __init__(self, timeout_s: float, options_for: Options | None = None) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._options_for = options_for or (lambda _: {})
        self._tokens = TokenSource(timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def _post(self, delivery: Delivery, body: bytes, options: Mapping[str, str]) -> tuple[int, str | None]:
        """(status, Retry-After header)."""
        headers = {
            "Content-Type": FHIR_JSON,
            "Accept": FHIR_JSON,
            "Idempotency-Key": delivery.idempotency_key,
            "X-Request-Id": delivery.delivery_id,
        }
        authorization = await self._tokens.header(delivery.recipient_id, options, self._client())
        if authorization:
            headers["Authorization"] = authorization
        try:
            async with self._client().post(
                target_url(delivery), data=body, headers=headers, allow_redirects=False
            ) as response:
                await response.read()
                return response.status, response.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise unreachable(exc, "FHIR server") from exc

    async def send(self, delivery: Delivery) -> int:
        refused = insecure_url_reason(delivery.endpoint)
        if refused is not None:
            raise DeliveryError(f"FHIR endpoint refused: {refused}", permanent=True)
        options = self._options_for(delivery.recipient_id)
        body = payload_bytes(delivery)
        status, wait = await self._post(delivery, body, options)
        if status == 401 and options.get("client_id"):
            self._tokens.forget(delivery.recipient_id)
            status, wait = await self._post(delivery, body, options)
        error = classify(status, wait)
        if error is not None:
            raise error
        return status

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
