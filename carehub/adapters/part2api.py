"""``POST /admin/part2/emergency``: a §2.51 medical-emergency attestation (who, why, patient, recipient, period).

The only way the emergency exception applies: nothing in a message can make
one. The handler only translates HTTP; storing the attestation (audited, on
the consents topic every worker reads) is the ``AttestationSink`` seam's job.
Body::

    {"id": "ed-2026-11-08-1", "patient": "RRC|RRC-20931", "recipient": "pcp-riverside",
     "attested_by": "Dr. A. Rivera, ED attending", "reason": "unresponsive, suspected overdose",
     "start": "2026-11-08T14:00:00Z", "end": "2026-11-09T14:00:00Z"}

201 with the stored attestation; 422 with an OperationOutcome naming what is missing.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

from aiohttp import web

from carehub.adapters.fhirhttp import InvalidJsonError, error_response
from carehub.adapters.httpauth import principal_of
from carehub.core.errors import CarehubError

log = logging.getLogger(__name__)


def _author(request: web.Request) -> str:
    """Who is writing (the authenticated principal the access check established), for the record."""
    who = principal_of(request)
    return who.actor if who is not None else "anonymous"


PATH = "/admin/part2/emergency"


class AttestationSink(Protocol):
    async def attest(self, body: dict[str, Any], author: str) -> dict[str, Any]: ...


def part2_routes(sink: AttestationSink) -> list[web.RouteDef]:
    async def attest(request: web.Request) -> web.Response:
        try:
            try:
                body = json.loads(await request.read())
            except (ValueError, UnicodeDecodeError) as exc:
                raise InvalidJsonError("the body is not valid JSON") from exc
            stored = await sink.attest(body, _author(request))
        except (CarehubError, OSError) as exc:
            log.info("emergency attestation refused: %s", getattr(exc, "code", type(exc).__name__))
            return error_response(exc)
        return web.json_response(stored, status=201)

    return [web.post(PATH, attest)]
