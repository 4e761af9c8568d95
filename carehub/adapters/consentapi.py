"""The Consent endpoint: ``POST /fhir/Consent``, ``PUT /fhir/Consent/{id}``, ``GET /fhir/Consent/{id}``,
``GET /fhir/Consent/{id}/_history``, ``GET /fhir/Consent?patient=``.

The handlers only translate HTTP; accepting a consent (§2.31 elements, a new
version recorded with who wrote it, durable write, taking effect) is the
``ConsentSink`` seam's job. ``If-Match: W/"<version>"`` on a write refuses to
overwrite a version the writer has not seen (412).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from aiohttp import web

from carehub.adapters.fhirhttp import (
    InvalidResourceError,
    NotFoundError,
    error_response,
    fhir_response,
    read_resource,
)
from carehub.adapters.httpauth import principal_of
from carehub.core.errors import CarehubError

log = logging.getLogger(__name__)


def _author(request: web.Request) -> str:
    """Who is writing (the authenticated principal the access check established), for the record."""
    who = principal_of(request)
    return who.actor if who is not None else "anonymous"


class ConsentSink(Protocol):
    async def accept(self, consent: dict[str, Any], author: str, if_match: str = "") -> dict[str, Any]:
        """Validate and store durably as a new version; return it. Raises HTTPInputError or StorageUnavailableError."""
        ...

    def read(self, consent_id: str) -> dict[str, Any] | None: ...

    def history(self, consent_id: str) -> list[dict[str, Any]]: ...

    def search(self, patient: str) -> list[dict[str, Any]]: ...


def consent_routes(sink: ConsentSink, base: str = "/fhir") -> list[web.RouteDef]:
    async def create(request: web.Request) -> web.Response:
        try:
            consent = await read_resource(request, "Consent")
            path_id = request.match_info.get("id")
            if path_id is not None and consent.get("id", path_id) != path_id:
                raise InvalidResourceError("the Consent id in the body differs from the id in the URL")
            if_match = request.headers.get("If-Match", "").removeprefix("W/").strip('"')
            stored = await sink.accept({**consent, "id": path_id} if path_id else consent, _author(request), if_match)
        except (CarehubError, OSError) as exc:
            log.info("consent refused: %s", getattr(exc, "code", type(exc).__name__))
            return error_response(exc)
        log.info("consent %s stored (status %s)", stored.get("id"), stored.get("status"))
        response = fhir_response(stored, status=201)
        version = stored.get("meta", {}).get("versionId", "")
        response.headers["Location"] = f"{base}/Consent/{stored['id']}/_history/{version}"
        response.headers["ETag"] = f'W/"{version}"'
        return response

    async def read(request: web.Request) -> web.Response:
        found = sink.read(request.match_info["id"])
        if found is None:
            return error_response(NotFoundError("no Consent with that id"))
        return fhir_response(found)

    async def history(request: web.Request) -> web.Response:
        versions = sink.history(request.match_info["id"])
        if not versions:
            return error_response(NotFoundError("no Consent with that id"))
        entries = [
            {"fullUrl": f"{base}/Consent/{c['id']}/_history/{c.get('meta', {}).get('versionId', '')}", "resource": c}
            for c in versions
        ]
        return fhir_response({"resourceType": "Bundle", "type": "history", "total": len(entries), "entry": entries})

    async def search(request: web.Request) -> web.Response:
        found = sink.search(request.query.get("patient", ""))
        entries = [{"fullUrl": f"{base}/Consent/{c['id']}", "resource": c} for c in found]
        return fhir_response({"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries})

    return [
        web.post(f"{base}/Consent", create),
        web.put(f"{base}/Consent/{{id}}", create),
        web.get(f"{base}/Consent/{{id}}", read),
        web.get(f"{base}/Consent/{{id}}/_history", history),
        web.get(f"{base}/Consent", search),
    ]
