"""The one access check in front of every HTTP route (an aiohttp middleware).

For each request: find the route's rule (adapters.httpauth.rules; no rule =
deny), establish the principal from a bearer token (``Authorization: Bearer``)
or a verified client certificate (mTLS, mapped by subject CN in
``auth.client_certificates``), check the rule's scopes and recipient binding,
and hand the principal to the handler as ``request["principal"]``. Refusals
are 401 (no or bad credentials) or 403 (not allowed) with an OperationOutcome
and a ``WWW-Authenticate`` header, and each is audited as a security event:
method, route template, reason, principal and peer address; never the URL's
ids, the query or the body, which may carry PHI.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from carehub.adapters.fhirhttp import ForbiddenError, HTTPInputError, UnauthenticatedError, error_response
from carehub.adapters.httpauth.rules import Rule, RuleTable
from carehub.adapters.httpauth.tokens import TokenVerifier
from carehub.core.clock import now_iso
from carehub.core.principal import CERTIFICATE, Principal
from carehub.core.settings import AuthSettings

log = logging.getLogger("carehub.security")
REALM = "carehub"
PRINCIPAL = web.RequestKey("carehub.principal", Principal)
_REFUSAL = web.ResponseKey("carehub.refusal", HTTPInputError)

#: Where security events go (the journal's security_events table in the hub).
SecurityAudit = Callable[[dict[str, Any]], Awaitable[None]]
#: Whether a recipient id is in the directory.
KnownRecipient = Callable[[str], bool]
#: A browser session's principal (the console's cookie; adapters.console.sessions), if any.
SessionPrincipal = Callable[[web.Request], Principal | None]


async def _log_only(_: dict[str, Any]) -> None:
    return None


def principal_of(request: web.Request) -> Principal | None:
    found = request.get(PRINCIPAL)
    return found if isinstance(found, Principal) else None


def refusal(error: HTTPInputError, *, scope: str = "", token_error: bool = False) -> web.Response:
    """The 401/403 answer: OperationOutcome plus ``WWW-Authenticate`` (RFC 6750)."""
    response = error_response(error)
    challenge = f'Bearer realm="{REALM}"'
    if isinstance(error, ForbiddenError):
        challenge += ', error="insufficient_scope"' + (f', scope="{scope}"' if scope else "")
    elif token_error:
        challenge += f', error="invalid_token", error_description="{error.message}"'
    response.headers["WWW-Authenticate"] = challenge
    response[_REFUSAL] = error
    return response


def _route_template(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "(unmatched)"


def security_event(request: web.Request, status: int, code: str, reason: str, who: Principal | None) -> dict[str, Any]:
    """A FHIR AuditEvent (DICOM 110113 Security Alert) for a refused request, without PHI."""
    agent: dict[str, Any] = {"requestor": True, "network": {"address": request.remote or "", "type": "2"}}
    if who is not None:
        agent["who"] = {"identifier": {"system": who.issuer, "value": who.subject}}
        agent["type"] = {"text": who.kind}
    return {
        "resourceType": "AuditEvent",
        "id": uuid.uuid4().hex,
        "type": {
            "system": "http://dicom.nema.org/resources/ontology/DCM",
            "code": "110113",
            "display": "Security Alert",
        },
        "action": "E",
        "recorded": now_iso(),
        "outcome": "4",
        "outcomeDesc": reason,
        "agent": [agent],
        "source": {"observer": {"display": "carehub"}},
        "entity": [
            {
                "what": {"display": f"{request.method} {_route_template(request)}"},
                "detail": [
                    {"type": "http-status", "valueString": str(status)},
                    {"type": "code", "valueString": code},
                ],
            }
        ],
    }


class Access:
    """Authentication and authorization for one HTTP application."""

    def __init__(
        self,
        settings: AuthSettings,
        *,
        rules: RuleTable | None = None,
        known_recipient: KnownRecipient | None = None,
        audit: SecurityAudit | None = None,
        tokens: TokenVerifier | None = None,
        sessions: SessionPrincipal | None = None,
    ) -> None:
        self.rules = rules or RuleTable()
        self.tokens = tokens or TokenVerifier(settings)
        self._certificates = {c.subject: c for c in settings.client_certificates}
        self._known = known_recipient or (lambda _: False)
        self._audit = audit or _log_only
        self._sessions = sessions or (lambda _: None)

    async def _authenticate(self, request: web.Request) -> Principal | None:
        """The caller's principal; None without credentials; UnauthenticatedError for bad ones."""
        header = request.headers.get("Authorization", "")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise UnauthenticatedError("use Authorization: Bearer <token>")
            return await self.tokens.verify(token.strip())
        return self._certificate_principal(request) or self._sessions(request)

    def _certificate_principal(self, request: web.Request) -> Principal | None:
        transport = request.transport
        peercert = transport.get_extra_info("peercert") if transport is not None else None
        if not peercert:
            return None
        names = [value for rdn in peercert.get("subject", ()) for key, value in rdn if key == "commonName"]
        mapped = next((self._certificates[n] for n in names if n in self._certificates), None)
        if mapped is None:
            raise UnauthenticatedError("the client certificate is not mapped to a principal")
        return Principal(CERTIFICATE, mapped.subject, "mtls", frozenset(mapped.scopes), mapped.recipient)

    def _authorize(self, rule: Rule | None, who: Principal) -> web.Response | None:
        if rule is None:
            return refusal(ForbiddenError("no access rule covers this route"))
        missing = who.missing(rule.scopes)
        if missing:
            return refusal(ForbiddenError(f"the principal lacks scope {' '.join(missing)}"), scope=" ".join(missing))
        if rule.recipient_bound and (who.recipient is None or not self._known(who.recipient)):
            return refusal(ForbiddenError("the principal is not bound to a recipient in the directory"))
        return None

    async def _check(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.match_info.http_exception is not None:  # 404/405 from the router
            return await handler(request)
        rule = self.rules.rule_for(request.method, _route_template(request))
        if rule is not None and rule.public:
            return await handler(request)
        try:
            who = await self._authenticate(request)
        except UnauthenticatedError as exc:
            return refusal(exc, token_error="Authorization" in request.headers)
        if who is None:
            if rule is not None and rule.channel_secret:
                return await handler(request)
            return refusal(UnauthenticatedError("authentication required: a bearer token or a client certificate"))
        request[PRINCIPAL] = who
        return self._authorize(rule, who) or await handler(request)

    async def _record(self, request: web.Request, response: web.StreamResponse) -> None:
        error = response.get(_REFUSAL)
        code = error.code if isinstance(error, HTTPInputError) else f"http-{response.status}"
        reason = error.message if isinstance(error, HTTPInputError) else "refused by the handler"
        who = principal_of(request)
        log.warning(
            "http access refused: status=%d code=%s route=%s %s principal=%s peer=%s",
            response.status,
            code,
            request.method,
            _route_template(request),
            f"{who.issuer}/{who.subject}" if who else "-",
            request.remote,
        )
        try:
            await self._audit(security_event(request, response.status, code, reason, who))
        except Exception as exc:  # an audit failure never turns a refusal into a 500
            log.error("security event not journaled: %s", type(exc).__name__)

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        response = await self._check(request, handler)
        if response.status in (401, 403):
            if response.status == 401 and "WWW-Authenticate" not in response.headers:
                response.headers["WWW-Authenticate"] = f'Bearer realm="{REALM}"'
            await self._record(request, response)
        return response
