"""Why a notification was refused, and the HTTP answer for it (in one place).

Every refusal is an ``HTTPInputError`` (adapters.fhirhttp, a ``MessageError`` of
carehub's one error tree) carrying its HTTP status and FHIR ``issue-type``
code; :func:`answer_for` turns any outcome into ``(status, OperationOutcome)``.
Texts never echo payload content, only codes and positions.
"""

from __future__ import annotations

from typing import Any

from carehub.adapters import fhirhttp
from carehub.adapters.fhirhttp import HTTPInputError, InvalidJsonError, WrongResourceTypeError, operation_outcome

#: A notification that cannot be accepted as it is (4xx: the source must not resend it as is).
NotificationError = HTTPInputError


class UnknownSubscriptionError(HTTPInputError):
    code = "unknown-subscription"
    http_status = 404
    issue_code = "not-found"


class UnauthorizedNotificationError(HTTPInputError):
    code = "unauthorized"
    http_status = 401
    issue_code = "security"


class UnsupportedMediaTypeError(HTTPInputError):
    code = "unsupported-media-type"
    http_status = 415
    issue_code = "not-supported"


def answer_for(error: BaseException | None) -> tuple[int, dict[str, Any]]:
    """HTTP status and OperationOutcome for an outcome (None = stored)."""
    if error is None:
        return 200, operation_outcome("information", "informational", "notification stored", "stored")
    return fhirhttp.answer_for(error)


__all__ = [
    "InvalidJsonError",
    "NotificationError",
    "UnauthorizedNotificationError",
    "UnknownSubscriptionError",
    "UnsupportedMediaTypeError",
    "WrongResourceTypeError",
    "answer_for",
    "operation_outcome",
]
