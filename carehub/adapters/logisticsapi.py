"""Discharge logistics over HTTP (used by ``carehub orders``): place an order by hand, follow the cascade.

* ``POST /logistics/orders``            place an order (JSON, see streams.logistics.place.order_request);
  201 with the order, 200 when the same order was placed before, 422 with every problem otherwise
* ``GET  /logistics/orders[?state=…&patient=…]``  the orders (no FHIR resources)
* ``GET  /logistics/orders/{id}``       one order with its offers and every step
* ``GET  /logistics/vendors[?service=…]``  per vendor: finished, on time, on-time rate, mean turnaround,
  offers not taken (declined, expired, dropped)

Orders hold patient keys and addresses: reading them needs ``carehub/phi.read`` besides the ops
scope (adapters.httpauth.rules); placing one is journaled with the caller as ``placed_by``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from carehub.adapters.fhirhttp import refused
from carehub.adapters.httpauth import principal_of
from carehub.core.clock import now_iso
from carehub.journal import Journal
from carehub.streams.logistics.cascade import OPEN_ORDER
from carehub.streams.logistics.place import order_request
from carehub.streams.routing.model import Recipient

STATES = (*OPEN_ORDER, "completed", "exhausted", "cancelled")


def _offer(o: Any) -> dict[str, Any]:
    keys = ("id", "seq", "vendor_id", "state", "offered_at", "expires_at", "answered_at", "reason", "task_status")
    return {k: getattr(o, k) for k in keys}


def logistics_routes(
    journal: Journal, directory: Callable[[], dict[str, Recipient]], placed: Callable[[], None]
) -> list[web.RouteDef]:
    store = journal.logistics

    async def place(request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read() or b"null")
        except ValueError:
            return refused(400, "invalid", "the body is not JSON")
        who = principal_of(request)
        order = order_request(body, directory(), who.actor if who is not None else "unknown", now_iso())
        if isinstance(order, list):
            return web.json_response({"problems": order}, status=422)
        added = await journal.db.run(store.place, order, now_iso())
        placed()
        return web.json_response(order.summary(), status=201 if added else 200)

    async def listing(request: web.Request) -> web.Response:
        state = request.query.get("state")
        if state is not None and state not in STATES:
            return refused(400, "invalid", f"state must be one of {', '.join(STATES)}")
        orders = await journal.db.run(store.orders, state, request.query.get("patient"))
        return web.json_response({"orders": [o.summary() for o in orders]})

    async def one(request: web.Request) -> web.Response:
        order_id = request.match_info["id"]
        order = await journal.db.run(store.get, order_id)
        if order is None:
            return refused(404, "not-found", "no such order")
        offers = await journal.db.run(store.offers, order_id)
        steps = await journal.db.run(store.steps, order_id)
        return web.json_response({**order.summary(), "offers": [_offer(o) for o in offers], "steps": steps})

    async def vendors(request: web.Request) -> web.Response:
        found = await journal.db.run(store.performance, request.query.get("service"))
        return web.json_response({"vendors": found})

    return [
        web.post("/logistics/orders", place),
        web.get("/logistics/orders", listing),
        web.get("/logistics/orders/{id}", one),
        web.get("/logistics/vendors", vendors),
    ]
