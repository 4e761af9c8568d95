"""The Consent endpoint: ``POST /fhir/Consent``, ``GET /fhir/Consent/{id}``, ``GET /fhir/Consent?patient=``.

The handlers only translate HTTP; accepting a consent (validation, durable
write, taking effect) is the ``ConsentSink`` seam's job.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from aiohttp import web

from adapters.fhirhttp import InvalidResourceError, NotFoundError, error_response, fhir_response, read_resource
from core.errors import CarehubError

log = logging.getLogger(__name__)


class ConsentSink(Protocol):
    async def accept(self, consent: dict[str, Any]) -> dict[str, Any]:
        """Validate and store durably; return the stored resource. Raises HTTPInputError or StorageUnavailableError."""
        ...

    def read(self, consent_id: str) -> dict[str, Any] | None: ...

    def search(self, patient: str) -> list[dict[str, Any]]: ...


def consent_routes(sink: ConsentSink, base: str = "/fhir") -> list[web.RouteDef]:
    async def create(request: web.Request) -> web.Response:
        try:
            consent = await read_resource(request, "Consent")
            path_id = request.match_info.get("id")
            if path_id is not None and consent.get("id", path_id) != path_id:
                raise InvalidResourceError("the Consent id in the body differs from the id in the URL")
            stored = await sink.accept({**consent, "id": path_id} if path_id else consent)
        except (CarehubError, OSError) as exc:
            log.info("consent refused: %s", getattr(exc, "code", type(exc).__name__))
            return error_response(exc)
        log.info("consent %s stored (status %s)", stored.get("id"), stored.get("status"))
        response = fhir_response(stored, status=201)
        response.headers["Location"] = f"{base}/Consent/{stored['id']}"
        return response

    async def read(request: web.Request) -> web.Response:
        found = sink.read(request.match_info["id"])
        if found is None:
            return error_response(NotFoundError("no Consent with that id"))
        return fhir_response(found)

    async def search(request: web.Request) -> web.Response:
        found = sink.search(request.query.get("patient", ""))
        entries = [{"fullUrl": f"{base}/Consent/{c['id']}", "resource": c} for c in found]
        return fhir_response({"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries})

    return [
        web.post(f"{base}/Consent", create),
        web.put(f"{base}/Consent/{{id}}", create),
        web.get(f"{base}/Consent/{{id}}", read),
        web.get(f"{base}/Consent", search),
    ]
