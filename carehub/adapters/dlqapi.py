"""Admin HTTP routes for delivery dead letters and attempts (used by ``carehub dlq``).

* ``GET  /admin/dlq[?state=parked|replayed]``   the dead letters: ids, codes, reasons (never payloads)
* ``POST /admin/dlq/replay`` ``{"ids": [...]}`` or ``{"all": true}``: send them again
* ``GET  /admin/deliveries/{id}``                 one delivery's attempts and outcome

A replay reopens the delivery in the journal, then publishes it unchanged
(same idempotency key) to the deliveries topic; if the publish fails the
dead letter is parked again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from carehub.adapters.fhirhttp import refused
from carehub.core.errors import CarehubError
from carehub.core.records import Delivery
from carehub.journal import Journal

log = logging.getLogger(__name__)
Republish = Callable[[Delivery], Awaitable[None]]


def replay_request(body: Any) -> list[str] | None | str:
    """Delivery ids to replay, None for all parked, or why the body is wrong."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    if body.get("all") is True:
        return None
    ids = body.get("ids")
    if isinstance(ids, list) and ids and all(isinstance(i, str) for i in ids):
        return ids
    return 'give {"ids": ["..."]} or {"all": true}'


async def replay_dead_letters(journal: Journal, republish: Republish, wanted: list[str] | None) -> dict[str, list[str]]:
    """Replay the parked dead letters ``wanted`` (None: all of them); the one replay path (API and console).

    Each is reopened and republished unchanged to the deliveries topic, where the send-time consent gate
    decides again; a failed publish parks it again.
    """
    parked = {row.delivery_id: row for row in await journal.db.run(journal.dead_letters, "parked")}
    ids = list(parked) if wanted is None else wanted
    replayed, unknown, failed = [], [i for i in ids if i not in parked], []
    for delivery_id in (i for i in ids if i in parked):
        row = parked[delivery_id]
        await journal.db.run(journal.mark_replayed, delivery_id)
        try:
            await republish(row.delivery)
        except CarehubError as exc:
            await journal.db.run(journal.park, row.delivery, row.error_code, row.reason)
            log.error("replay of delivery %s failed: %s", delivery_id, exc.code)
            failed.append(delivery_id)
            continue
        replayed.append(delivery_id)
        log.info("delivery %s replayed from the dead letters", delivery_id)
    return {"replayed": replayed, "unknown": unknown, "failed": failed}


def dlq_routes(journal: Journal, republish: Republish) -> list[web.RouteDef]:
    async def listing(request: web.Request) -> web.Response:
        state = request.query.get("state")
        if state not in (None, "parked", "replayed"):
            return refused(400, "invalid", "state must be parked or replayed")
        rows = await journal.db.run(journal.dead_letters, state)
        return web.json_response({"dead_letters": [row.summary() for row in rows]})

    async def replay(request: web.Request) -> web.Response:
        try:
            wanted = replay_request(json.loads(await request.read() or b"{}"))
        except ValueError:
            return refused(400, "invalid", "the body is not JSON")
        if isinstance(wanted, str):
            return refused(400, "invalid", wanted)
        return web.json_response(await replay_dead_letters(journal, republish, wanted))

    async def attempts(request: web.Request) -> web.Response:
        delivery_id = request.match_info["id"]
        rows = await journal.db.run(journal.attempts, delivery_id)
        status = await journal.db.run(journal.outcome_status, delivery_id)
        if not rows and status is None:
            return refused(404, "not-found", "no such delivery")
        return web.json_response({"delivery_id": delivery_id, "outcome": status, "attempts": rows})

    return [
        web.get("/admin/dlq", listing),
        web.post("/admin/dlq/replay", replay),
        web.get("/admin/deliveries/{id}", attempts),
    ]
