"""The rest-hook endpoint: ``POST /fhir/notify/{source}/{subscription}``.

Order of checks: the caller must prove itself, either with that
subscription's secret header or with a bearer token / client certificate the
access check (adapters.httpauth) verified and found to hold
``carehub/notify.write`` (else 401; without credentials an unknown
subscription is a 401 too, so the endpoint does not tell outsiders which
subscriptions exist); the subscription must be configured (else 404); the
body must be a notification Bundle (else 4xx). Then the notification goes to Kafka through
the :class:`Publisher` seam, and only once that returned is the answer 200;
a write the broker does not confirm gets 503 so the source retries. Every
refusal carries an OperationOutcome; nothing raised here escapes to aiohttp.
Logs carry source, subscription, type and event numbers, never content.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from carehub.adapters.httpauth import principal_of
from carehub.adapters.resthook.errors import (
    NotificationError,
    UnauthorizedNotificationError,
    UnknownSubscriptionError,
    UnsupportedMediaTypeError,
    answer_for,
)
from carehub.adapters.resthook.notification import Notification, parse_notification
from carehub.core.clock import now_iso
from carehub.core.errors import CarehubError, StorageUnavailableError
from carehub.core.records import FhirNotification, InboundRefusal

log = logging.getLogger(__name__)

PATH = "/fhir/notify/{source}/{subscription}"
#: A refusal carries at most this much of the body.
REFUSAL_RAW_BYTES = 65_536
#: Told of each notification refused from a caller that proved itself (for the message journal).
RefusalObserver = Callable[[InboundRefusal], None]
_JSON_TYPES = frozenset({"application/fhir+json", "application/json", "application/json+fhir"})


class Publisher(Protocol):
    """Where accepted notifications go. Returns only once the write is durable (acks=all);
    raises :class:`StorageUnavailableError` when the broker does not confirm it."""

    async def publish_notification(self, record: FhirNotification) -> None: ...


@dataclass(frozen=True, slots=True)
class Channel:
    """The header a subscription's notifications must carry (set on the source as channel.header)."""

    header: str
    value: str


class Channels(Protocol):
    def channel(self, source: str, subscription: str) -> Channel | None: ...


def endpoint_path(source: str, subscription: str) -> str:
    return PATH.format(source=source, subscription=subscription)


def to_record(source: str, subscription: str, notification: Notification, received_at: str) -> FhirNotification:
    status = notification.status
    return FhirNotification(
        source=source,
        subscription=subscription,
        kind=status.kind,
        received_at=received_at,
        bundle=notification.bundle,
        subscription_ref=status.subscription_ref,
        events_since_start=status.events_since_start,
        event_numbers=notification.event_numbers,
        fhir_version=status.fhir_version,
    )


class RestHookReceiver:
    def __init__(
        self,
        publisher: Publisher,
        channels: Channels,
        *,
        publish_timeout_s: float = 15.0,
        on_refusal: RefusalObserver | None = None,
    ) -> None:
        """``on_refusal`` hears of refusals to a configured subscription's proven caller; not of 401/404
        (strangers must not fill the message journal; the security journal records those)."""
        self._on_refusal = on_refusal
        self._publisher = publisher
        self._channels = channels
        self._timeout = publish_timeout_s

    def routes(self) -> list[web.RouteDef]:
        return [web.post(PATH, self.handle)]

    async def handle(self, request: web.Request) -> web.Response:
        source = request.match_info["source"]
        subscription = request.match_info["subscription"]
        try:
            record = await self._accept(request, source, subscription)
            await asyncio.wait_for(self._publisher.publish_notification(record), self._timeout)
        except TimeoutError:
            error: BaseException | None = StorageUnavailableError("the broker did not confirm in time")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every failure gets an answer; none reaches aiohttp
            error = exc
        else:
            error = None
            log.info(
                "notification stored: source=%s subscription=%s type=%s events=%s",
                source,
                subscription,
                record.kind,
                record.event_numbers,
            )
        if error is not None:
            self._log_refusal(source, subscription, error)
        status, outcome = answer_for(error)
        if error is not None and not isinstance(error, UnauthorizedNotificationError | UnknownSubscriptionError):
            await self._refused(request, source, subscription, status, error)
        return web.json_response(outcome, status=status, content_type="application/fhir+json")

    async def _accept(self, request: web.Request, source: str, subscription: str) -> FhirNotification:
        channel = self._channels.channel(source, subscription)
        if principal_of(request) is None:  # no token or certificate: the subscription's own secret
            offered = request.headers.get(channel.header, "") if channel is not None else ""
            if channel is None or not hmac.compare_digest(offered.encode(), channel.value.encode()):
                raise UnauthorizedNotificationError("missing or wrong subscription secret header, and no bearer token")
        if channel is None:
            raise UnknownSubscriptionError("no such subscription is configured")
        if request.content_type not in _JSON_TYPES:
            raise UnsupportedMediaTypeError("send application/fhir+json")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise NotificationError("the body is too large") from None
        notification = parse_notification(body)
        return to_record(source, subscription, notification, now_iso())

    async def _refused(
        self, request: web.Request, source: str, subscription: str, status: int, error: BaseException
    ) -> None:
        if self._on_refusal is None:
            return
        body = b""
        with contextlib.suppress(Exception):  # too large or unreadable: the refusal goes without it
            body = await request.read()
        self._on_refusal(
            InboundRefusal(
                source="fhir",
                listener="rest-hook",
                peer=str(request.remote or ""),
                received_at=now_iso(),
                control_id=subscription[:64],
                message_type="fhir:notification",
                sending_facility=source[:64],
                patient_key="",
                ack_code=str(status),
                error_code=error.code if isinstance(error, CarehubError) else "internal-error",
                reason=error.message if isinstance(error, CarehubError) else "internal error",
                raw_b64=base64.b64encode(body[:REFUSAL_RAW_BYTES]).decode("ascii"),
                raw_size=len(body),
            )
        )

    @staticmethod
    def _log_refusal(source: str, subscription: str, error: BaseException) -> None:
        if isinstance(error, NotificationError | StorageUnavailableError):
            log.warning(
                "notification refused: source=%s subscription=%s code=%s", source[:40], subscription[:40], error.code
            )
        else:
            log.error(
                "notification failed: source=%s subscription=%s error=%s",
                source[:40],
                subscription[:40],
                type(error).__name__,
            )
