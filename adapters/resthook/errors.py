"""Why a notification was refused, and the HTTP answer for it (in one place).

Every refusal is a :class:`NotificationError` (a ``MessageError`` of carehub's
one error tree) carrying its HTTP status and FHIR ``issue-type`` code;
:func:`answer_for` turns any outcome into ``(status, OperationOutcome)``.
Texts never echo payload content, only codes and positions.
"""

from __future__ import annotations

from typing import Any

from core.errors import CarehubError, MessageError, StorageUnavailableError


class NotificationError(MessageError):
    """A notification that cannot be accepted as it is (4xx: the source must not resend it as is)."""

    code = "invalid-notification"
    http_status = 400
    issue_code = "invalid"


class InvalidJsonError(NotificationError):
    code = "invalid-json"
    issue_code = "structure"


class WrongResourceTypeError(NotificationError):
    code = "wrong-resource-type"
    http_status = 422
    issue_code = "invalid"


class UnknownSubscriptionError(NotificationError):
    code = "unknown-subscription"
    http_status = 404
    issue_code = "not-found"


class UnauthorizedNotificationError(NotificationError):
    code = "unauthorized"
    http_status = 401
    issue_code = "security"


class UnsupportedMediaTypeError(NotificationError):
    code = "unsupported-media-type"
    http_status = 415
    issue_code = "not-supported"


def operation_outcome(severity: str, issue_code: str, text: str, error_code: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": severity,
                "code": issue_code,
                "details": {"coding": [{"system": "urn:carehub:error", "code": error_code}], "text": text},
            }
        ],
    }


def answer_for(error: BaseException | None) -> tuple[int, dict[str, Any]]:
    """HTTP status and OperationOutcome for an outcome (None = stored)."""
    if error is None:
        return 200, operation_outcome("information", "informational", "notification stored", "stored")
    if isinstance(error, NotificationError):
        return error.http_status, operation_outcome("error", error.issue_code, error.message, error.code)
    if isinstance(error, StorageUnavailableError):
        return 503, operation_outcome("error", "transient", "not stored; resend later", error.code)
    code = error.code if isinstance(error, CarehubError) else "internal-error"
    return 500, operation_outcome("fatal", "exception", "internal error; resend later", code)
