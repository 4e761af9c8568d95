"""FHIR over HTTP at the inbound edge: errors as OperationOutcomes, in one place.

Every refusal is an :class:`HTTPInputError` (a ``MessageError`` of carehub's one
error tree) carrying its HTTP status and FHIR ``issue-type`` code;
:func:`answer_for` turns any outcome into ``(status, OperationOutcome)``.
Texts never echo payload content, only codes and positions.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from carehub.core.errors import CarehubError, MessageError, StorageUnavailableError

FHIR_JSON = "application/fhir+json"


class HTTPInputError(MessageError):
    """Input that cannot be accepted as it is (4xx: do not resend it unchanged)."""

    code = "invalid-input"
    http_status = 400
    issue_code = "invalid"


class InvalidJsonError(HTTPInputError):
    code = "invalid-json"
    issue_code = "structure"


class WrongResourceTypeError(HTTPInputError):
    code = "wrong-resource-type"
    http_status = 422
    issue_code = "invalid"


class InvalidResourceError(HTTPInputError):
    code = "invalid-resource"
    http_status = 422
    issue_code = "invalid"


class IncompleteResourceError(InvalidResourceError):
    """Required elements are missing: one OperationOutcome issue names each, all at once."""

    code = "incomplete-resource"
    issue_code = "required"

    def __init__(self, message: str, missing: tuple[tuple[str, str], ...]) -> None:
        super().__init__(message)
        self.missing = missing


class PreconditionFailedError(HTTPInputError):
    """If-Match named a version that is no longer the current one."""

    code = "version-conflict"
    http_status = 412
    issue_code = "conflict"


class NotFoundError(HTTPInputError):
    code = "not-found"
    http_status = 404
    issue_code = "not-found"


class UnauthenticatedError(HTTPInputError):
    """No credentials, or credentials that do not verify (401 with ``WWW-Authenticate``)."""

    code = "unauthenticated"
    http_status = 401
    issue_code = "login"


class ForbiddenError(HTTPInputError):
    """Verified credentials that do not allow this request (403)."""

    code = "forbidden"
    http_status = 403
    issue_code = "forbidden"


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


def answer_for(error: BaseException) -> tuple[int, dict[str, Any]]:
    """HTTP status and OperationOutcome for a failure."""
    if isinstance(error, IncompleteResourceError):
        issues = [
            {"severity": "error", "code": "required", "expression": [path],
             "details": {"coding": [{"system": "urn:carehub:error", "code": error.code}], "text": f"missing {what}"}}
            for path, what in error.missing
        ]  # fmt: skip
        return error.http_status, {"resourceType": "OperationOutcome", "issue": issues}
    if isinstance(error, HTTPInputError):
        return error.http_status, operation_outcome("error", error.issue_code, error.message, error.code)
    if isinstance(error, StorageUnavailableError):
        return 503, operation_outcome("error", "transient", "not stored; resend later", error.code)
    code = error.code if isinstance(error, CarehubError) else "internal-error"
    return 500, operation_outcome("fatal", "exception", "internal error; resend later", code)


def fhir_response(resource: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response(resource, status=status, content_type=FHIR_JSON)


def error_response(error: BaseException) -> web.Response:
    status, body = answer_for(error)
    return fhir_response(body, status)


def refused(status: int, issue_code: str, text: str) -> web.Response:
    """An endpoint's own refusal (4xx), rendered as every other HTTP error of the hub: an OperationOutcome."""
    return fhir_response(operation_outcome("error", issue_code, text, issue_code), status)


async def read_resource(request: web.Request, resource_type: str) -> dict[str, Any]:
    """The request body as a FHIR resource of ``resource_type``, or an HTTPInputError."""
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidJsonError("the body is not valid JSON") from exc
    if not isinstance(body, dict) or body.get("resourceType") != resource_type:
        found = body.get("resourceType") if isinstance(body, dict) else type(body).__name__
        raise WrongResourceTypeError(f"expected a {resource_type} resource, got {str(found)[:40]!r}")
    return body
