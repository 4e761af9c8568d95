"""A FHIR R4 source server over real HTTP (aiohttp), the far side carehub talks to.

Serves resources from fixtures (read, search by ``beneficiary`` and
``_lastUpdated``), accepts Subscription create/update (then performs the
handshake against the channel endpoint), answers ``$status`` and ``$events``,
issues SMART Backend Services tokens for JWT assertions signed by the
registered client key, searches by identifier, patient, status and type (token
search) held or failing per type or patient (a slow or broken source),
and POSTs R4 Backport notifications (empty, id-only or full-resource) to
carehub's endpoint like a real source does.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import jwt
from aiohttp import web

BP = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"


def _token(codings: list[dict[str, Any]], value: str) -> bool:
    """FHIR token search: ``code`` (any system) or ``system|code`` against identifiers or codings."""
    system, bar, code = value.rpartition("|")
    return any((c.get("value") or c.get("code")) == code and (not bar or c.get("system") == system) for c in codings)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Event:
    number: int
    focus: str
    timestamp: str


@dataclass
class Sub:
    resource: dict[str, Any]
    events: list[Event] = field(default_factory=list)
    handshake_status: int | None = None

    @property
    def endpoint(self) -> str:
        return str(self.resource["channel"]["endpoint"])

    @property
    def headers(self) -> dict[str, str]:
        out = {}
        for line in self.resource["channel"].get("header", []):
            name, _, value = line.partition(":")
            out[name.strip()] = value.strip()
        return out

    @property
    def payload(self) -> str:
        ext = self.resource["channel"].get("_payload", {}).get("extension", [{}])
        return str(ext[0].get("valueCode", "id-only"))


class SourceServer:
    def __init__(self, *, token: str | None = None, client_public_key: str | None = None, client_id: str = "") -> None:
        self.resources: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, Sub] = {}
        self.requests: list[str] = []
        #: Searches that wait for the event before answering, by ``Type`` or ``Type?patient=<ref>``.
        self.holds: dict[str, asyncio.Event] = {}
        #: HTTP status a search answers with instead of results, keyed the same way.
        self.failures: dict[str, int] = {}
        self._token = token
        self._client_key = client_public_key
        self._client_id = client_id
        self._issued: set[str] = set()
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    @property
    def token_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    # -- fixtures -------------------------------------------------------------------------------
    def put(self, resource: dict[str, Any]) -> str:
        ref = f"{resource['resourceType']}/{resource['id']}"
        version = int((self.resources.get(ref, {}).get("meta") or {}).get("versionId", "0")) + 1
        self.resources[ref] = {**resource, "meta": {"versionId": str(version), "lastUpdated": _now()}}
        return ref

    # -- notifications --------------------------------------------------------------------------
    def _status(self, sub_id: str, kind: str, events: list[Event]) -> dict[str, Any]:
        sub = self.subscriptions[sub_id]
        params: list[dict[str, Any]] = [
            {"name": "subscription", "valueReference": {"reference": f"{self.base_url}/Subscription/{sub_id}"}},
            {"name": "topic", "valueCanonical": sub.resource["criteria"]},
            {"name": "status", "valueCode": "active" if kind != "handshake" else "requested"},
            {"name": "type", "valueCode": kind},
            {"name": "events-since-subscription-start", "valueString": str(len(sub.events))},
        ]
        for ev in events:
            parts: list[dict[str, Any]] = [
                {"name": "event-number", "valueString": str(ev.number)},
                {"name": "timestamp", "valueInstant": ev.timestamp},
            ]
            if sub.payload != "empty" or kind == "query-event":
                parts.append({"name": "focus", "valueReference": {"reference": f"{self.base_url}/{ev.focus}"}})
            params.append({"name": "notification-event", "part": parts})
        return {"resourceType": "Parameters", "parameter": params}

    def bundle(self, sub_id: str, kind: str, events: list[Event], payload: str) -> dict[str, Any]:
        entries: list[dict[str, Any]] = [
            {
                "fullUrl": f"urn:uuid:{secrets.token_hex(8)}",
                "resource": self._status(sub_id, kind, events),
                "request": {"method": "GET", "url": f"{self.base_url}/Subscription/{sub_id}/$status"},
                "response": {"status": "200"},
            }
        ]
        if payload != "empty":
            for ev in events:
                entry: dict[str, Any] = {
                    "fullUrl": f"{self.base_url}/{ev.focus}",
                    "request": {"method": "PUT", "url": ev.focus},
                    "response": {"status": "200"},
                }
                if payload == "full-resource":
                    entry["resource"] = self.resources[ev.focus]
                entries.append(entry)
        return {"resourceType": "Bundle", "type": "history", "timestamp": _now(), "entry": entries}

    async def post(self, sub_id: str, bundle: dict[str, Any], headers: dict[str, str] | None = None) -> int:
        sub = self.subscriptions[sub_id]
        sent = {"Content-Type": "application/fhir+json", **(sub.headers if headers is None else headers)}
        async with aiohttp.ClientSession() as http, http.post(sub.endpoint, json=bundle, headers=sent) as res:
            await res.read()
            return res.status

    async def event(self, sub_id: str, focus: str, *, deliver: bool = True) -> int | None:
        """Record an event for the subscription; POST it unless ``deliver`` is False (a lost notification)."""
        sub = self.subscriptions[sub_id]
        ev = Event(len(sub.events) + 1, focus, _now())
        sub.events.append(ev)
        if not deliver:
            return None
        return await self.post(sub_id, self.bundle(sub_id, "event-notification", [ev], sub.payload))

    async def heartbeat(self, sub_id: str) -> int:
        return await self.post(sub_id, self.bundle(sub_id, "heartbeat", [], "empty"))

    # -- HTTP -----------------------------------------------------------------------------------
    def _authorized(self, request: web.Request) -> bool:
        if self._token is None and self._client_key is None:
            return True
        offered = request.headers.get("Authorization", "").removeprefix("Bearer ")
        return offered == self._token or offered in self._issued

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append(f"{request.method} {request.path_qs}")
        if request.path.startswith("/fhir") and not self._authorized(request):
            return web.json_response({"resourceType": "OperationOutcome"}, status=401)
        response: web.StreamResponse = await handler(request)
        return response

    async def _token_endpoint(self, request: web.Request) -> web.Response:
        form = await request.post()
        try:
            claims = jwt.decode(
                str(form["client_assertion"]), self._client_key, algorithms=["RS384"], audience=self.token_url
            )
        except (KeyError, jwt.PyJWTError):
            return web.json_response({"error": "invalid_client"}, status=401)
        if claims.get("iss") != self._client_id or form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "invalid_client"}, status=401)
        token = secrets.token_hex(16)
        self._issued.add(token)
        return web.json_response({"access_token": token, "token_type": "bearer", "expires_in": 300})

    async def _read(self, request: web.Request) -> web.Response:
        ref = f"{request.match_info['type']}/{request.match_info['id']}"
        if ref not in self.resources:
            return web.json_response({"resourceType": "OperationOutcome"}, status=404)
        return web.json_response(self.resources[ref], content_type="application/fhir+json")

    def _matches(self, resource: dict[str, Any], query: Any) -> bool:
        for name, value in query.items():
            if name == "beneficiary" and resource.get("beneficiary", {}).get("reference") != value:
                return False
            if name == "_lastUpdated" and resource["meta"]["lastUpdated"] < value.removeprefix("ge"):
                return False
            if name == "identifier" and not _token(resource.get("identifier", []), value):
                return False
            if name == "patient" and value not in (
                (resource.get("subject") or resource.get("patient") or {}).get("reference"),
            ):
                return False
            if name == "status" and resource.get("status") not in value.split(","):
                return False
            if name == "type" and not any(
                _token(resource.get("type", {}).get("coding", []), v) for v in value.split(",")
            ):
                return False
        return True

    async def _search(self, request: web.Request) -> web.Response:
        kind = request.match_info["type"]
        keyed = f"{kind}?patient={request.query.get('patient', '')}"
        held = self.holds.get(keyed) or self.holds.get(kind)
        if held is not None:
            await held.wait()  # a source that does not answer (until the test releases it)
        failing = self.failures.get(keyed) or self.failures.get(kind)
        if failing:
            return web.json_response({"resourceType": "OperationOutcome"}, status=failing)
        if kind == "Subscription":
            found = [
                {**s.resource, "id": i} for i, s in self.subscriptions.items() if s.endpoint == request.query.get("url")
            ]
        else:
            found = [
                r for ref, r in self.resources.items() if ref.startswith(f"{kind}/") and self._matches(r, request.query)
            ]
        bundle = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in found]}
        return web.json_response(bundle, content_type="application/fhir+json")

    async def _handshake(self, sub_id: str) -> None:
        sub = self.subscriptions[sub_id]
        try:
            sub.handshake_status = await self.post(sub_id, self.bundle(sub_id, "handshake", [], "empty"))
        except aiohttp.ClientError:
            sub.handshake_status = None  # endpoint unreachable: the Subscription goes to status error

    async def _create(self, request: web.Request) -> web.Response:
        resource = await request.json()
        sub_id = str(next(self._ids))
        self.subscriptions[sub_id] = Sub({**resource, "id": sub_id})
        await self._handshake(sub_id)
        return web.json_response({**resource, "id": sub_id, "status": self._status_of(sub_id)}, status=201)

    async def _update(self, request: web.Request) -> web.Response:
        sub_id = request.match_info["id"]
        resource = await request.json()
        old = self.subscriptions[sub_id]
        self.subscriptions[sub_id] = Sub({**resource, "id": sub_id}, old.events)
        await self._handshake(sub_id)
        return web.json_response({**resource, "id": sub_id, "status": self._status_of(sub_id)})

    def _status_of(self, sub_id: str) -> str:
        return "active" if self.subscriptions[sub_id].handshake_status == 200 else "error"

    async def _status_op(self, request: web.Request) -> web.Response:
        sub_id = request.match_info["id"]
        bundle = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": self._status(sub_id, "query-status", [])}],
        }
        return web.json_response(bundle, content_type="application/fhir+json")

    async def _events_op(self, request: web.Request) -> web.Response:
        sub_id = request.match_info["id"]
        since = int(request.query.get("eventsSinceNumber", "1"))
        until = int(request.query.get("eventsUntilNumber", str(len(self.subscriptions[sub_id].events))))
        events = [e for e in self.subscriptions[sub_id].events if since <= e.number <= until]
        payload = request.query.get("content", "full-resource")
        return web.json_response(
            self.bundle(sub_id, "query-event", events, payload), content_type="application/fhir+json"
        )

    async def start(self) -> None:
        app = web.Application(middlewares=[self._auth])
        app.add_routes(
            [
                web.post("/token", self._token_endpoint),
                web.get("/fhir/Subscription/{id}/$status", self._status_op),
                web.get("/fhir/Subscription/{id}/$events", self._events_op),
                web.post("/fhir/Subscription", self._create),
                web.put("/fhir/Subscription/{id}", self._update),
                web.get("/fhir/{type}/{id}", self._read),
                web.get("/fhir/{type}", self._search),
            ]
        )
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
